//! The zoo's vsftpd recipe.

use crate::zoo::*;

pub(in crate::zoo) fn vsftpd(ctx: &Ctx) -> Result<Vec<Plan>, LabError> {
    let empty = ctx.mkdir("vsftpd-empty", 0o755)?;
    let conf = ctx.write(
        "vsftpd.conf",
        &format!(
            "listen=YES\nlisten_ipv6=NO\nlisten_address={}\nbackground=NO\n\
             anonymous_enable=NO\nlocal_enable=YES\nwrite_enable=NO\n\
             secure_chroot_dir={empty}\npam_service_name=vsftpd\nxferlog_enable=NO\n",
            ctx.v4
        ),
    )?;
    let version = pkg_upstream("vsftpd");
    Ok(vec![
        Plan::new("vsftpd", &["/usr/sbin/vsftpd", &conf]).serve(
            "vsftpd",
            21,
            Transport::Plain,
            "ftp",
            Some("vsftpd"),
            version.as_deref(),
            None,
        ),
    ])
}
