//! The zoo's xrdp recipe.

use crate::zoo::*;

pub(in crate::zoo) fn xrdp(ctx: &Ctx) -> Result<Vec<Plan>, LabError> {
    let conf = ctx.write(
        "xrdp.ini",
        &format!(
            "[Globals]\nini_version=1\nfork=true\nport=tcp://{v4}:3389\n\
             security_layer=negotiate\ncrypt_level=high\ncertificate={cert}\n\
             key_file={key}\nssl_protocols=TLSv1.2, TLSv1.3\nchannel_code=1\nmax_bpp=32\n\
             [Logging]\nLogFile={log}\nLogLevel=INFO\nEnableSyslog=false\n\
             [Xorg]\nname=Xorg\nlib=libxup.so\nusername=ask\npassword=ask\n\
             ip=127.0.0.1\nport=-1\ncode=20\n",
            v4 = ctx.v4,
            cert = ctx.cert(),
            key = ctx.key(),
            log = ctx.path("xrdp-detail.log"),
        ),
    )?;
    Ok(vec![
        Plan::new("xrdp", &["/usr/sbin/xrdp", "--nodaemon", "--config", &conf]).serve(
            "xrdp",
            3389,
            Transport::Plain,
            "rdp",
            Some("xrdp"),
            None,
            None,
        ),
    ])
}
