//! The zoo's exim recipe.

use crate::zoo::*;

pub(in crate::zoo) fn exim(ctx: &Ctx) -> Result<Vec<Plan>, LabError> {
    let spool = ctx.mkdir("exim-spool", 0o750)?;
    // Exim drops root after binding; its spool must be its own.
    cmd::run(&["chown", "-R", "Debian-exim:Debian-exim", &spool])?;
    let conf = ctx.write(
        "exim.conf",
        &format!(
            "primary_hostname = {ZOO_HOST_NAME}\n\
             daemon_smtp_ports = 25 : 465 : 587\n\
             tls_on_connect_ports = 465\n\
             local_interfaces = <; {v4} ; {v6}\n\
             tls_advertise_hosts = *\n\
             tls_certificate = {cert}\n\
             tls_privatekey = {key}\n\
             spool_directory = {spool}\n\
             log_file_path = {spool}/%slog\n\
             pid_file_path = {pid}\n\
             rfc1413_hosts =\n\
             keep_environment =\n\
             host_lookup =\n\
             acl_smtp_rcpt = acl_check_rcpt\n\
             begin acl\n\
             acl_check_rcpt:\n  deny message = relay not permitted\n",
            v4 = ctx.v4,
            v6 = ctx.v6,
            cert = ctx.cert(),
            key = ctx.key(),
            pid = ctx.path("exim.pid"),
        ),
    )?;
    let version = version_from_output(&["/usr/sbin/exim4", "-bV"], "Exim version ")
        .or_else(|| pkg_upstream("exim4-daemon-light"));
    let v = version.as_deref();
    let p = Some("Exim smtpd");
    Ok(vec![
        Plan::new("exim4", &["/usr/sbin/exim4", "-C", &conf, "-bdf", "-q30m"])
            .serve(
                "exim4-daemon-light",
                25,
                Transport::StartTls,
                "smtp",
                p,
                v,
                None,
            )
            .serve(
                "exim4-daemon-light",
                465,
                Transport::Tls,
                "smtp",
                p,
                v,
                None,
            )
            .serve(
                "exim4-daemon-light",
                587,
                Transport::StartTls,
                "smtp",
                p,
                v,
                None,
            ),
    ])
}
