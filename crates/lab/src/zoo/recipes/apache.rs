//! The zoo's apache recipe.

use crate::zoo::*;

pub(in crate::zoo) fn apache(ctx: &Ctx) -> Result<Vec<Plan>, LabError> {
    let run = ctx.mkdir("apache-run", 0o755)?;
    let www = ctx.mkdir("www", 0o755)?;
    let modules = "/usr/lib/apache2/modules";
    let conf = ctx.write(
        "apache2.conf",
        &format!(
            "ServerRoot /etc/apache2\nDefaultRuntimeDir {run}\nPidFile {run}/apache2.pid\n\
             Mutex file:{run} default\nErrorLog {log}\nLogLevel warn\n\
             LoadModule mpm_event_module {modules}/mod_mpm_event.so\n\
             LoadModule authz_core_module {modules}/mod_authz_core.so\n\
             LoadModule dir_module {modules}/mod_dir.so\n\
             User www-data\nGroup www-data\nServerName {ZOO_HOST_NAME}\nServerTokens Full\n\
             Listen {v4}:8080\nListen [{v6}]:8080\nDocumentRoot {www}\n\
             <Directory {www}>\n  Require all granted\n</Directory>\n",
            log = ctx.path("apache-error.log"),
            v4 = ctx.v4,
            v6 = ctx.v6,
        ),
    )?;
    let version = version_from_output(&["/usr/sbin/apache2", "-v"], "Apache/")
        .or_else(|| pkg_upstream("apache2"));
    Ok(vec![
        Plan::new(
            "apache2",
            &["/usr/sbin/apache2", "-DFOREGROUND", "-f", &conf],
        )
        .env("APACHE_LOG_DIR", &ctx.path(""))
        .serve(
            "apache2",
            8080,
            Transport::Plain,
            "http",
            Some("Apache httpd"),
            version.as_deref(),
            None,
        ),
    ])
}
