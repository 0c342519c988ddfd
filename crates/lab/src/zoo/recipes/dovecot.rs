//! The zoo's dovecot recipe.

use crate::zoo::*;

pub(in crate::zoo) fn dovecot(ctx: &Ctx) -> Result<Vec<Plan>, LabError> {
    let base = ctx.mkdir("dovecot-run", 0o755)?;
    let state = ctx.mkdir("dovecot-state", 0o750)?;
    let passwd = ctx.write("dovecot.passwd", "")?;
    let conf = ctx.write(
        "dovecot.conf",
        &format!(
            "base_dir = {base}\nstate_dir = {state}\nlog_path = {log}\n\
             listen = {v4}, {v6}\nprotocols = imap pop3\n\
             ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}\n\
             default_login_user = dovenull\ndefault_internal_user = dovecot\n\
             disable_plaintext_auth = yes\nauth_mechanisms = plain\n\
             mail_location = maildir:/nonexistent\n\
             passdb {{\n  driver = passwd-file\n  args = {passwd}\n}}\n\
             userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home=/nonexistent\n}}\n",
            log = ctx.path("dovecot-detail.log"),
            v4 = ctx.v4,
            v6 = ctx.v6,
            cert = ctx.cert(),
            key = ctx.key(),
        ),
    )?;
    let imap = Some("Dovecot imapd");
    let pop3 = Some("Dovecot pop3d");
    let pkg = "dovecot-imapd";
    Ok(vec![
        Plan::new("dovecot", &["/usr/sbin/dovecot", "-F", "-c", &conf])
            .serve(pkg, 110, Transport::StartTls, "pop3", pop3, None, None)
            .serve(pkg, 143, Transport::StartTls, "imap", imap, None, None)
            .serve(pkg, 993, Transport::Tls, "imap", imap, None, None)
            .serve(pkg, 995, Transport::Tls, "pop3", pop3, None, None),
    ])
}
