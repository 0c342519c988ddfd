//! The zoo's tomcat recipe: a private CATALINA_BASE made from Debian's
//! configuration and ROOT webapp, with the manager and host manager
//! reachable from outside and the tomcat/tomcat login.

use crate::zoo::*;

/// Tomcat's usual port is the zoo's Apache's: the next one.
const TOMCAT_PORT: u16 = 8081;

pub(in crate::zoo) fn tomcat(ctx: &Ctx) -> Result<Vec<Plan>, LabError> {
    let base = ctx.mkdir("tomcat", 0o755)?;
    for dir in ["conf", "logs", "work", "temp", "webapps"] {
        ctx.mkdir(&format!("tomcat/{dir}"), 0o755)?;
    }
    cmd::run(&["cp", "-rL", "/etc/tomcat10/.", &format!("{base}/conf")])?;
    cmd::run(&[
        "cp",
        "-rL",
        "/var/lib/tomcat10/webapps/ROOT",
        &format!("{base}/webapps/"),
    ])?;
    let server_xml = ctx.root.join("tomcat/conf/server.xml");
    let connector = "<Connector port=\"8080\" protocol=\"HTTP/1.1\"";
    let text = read_string(&server_xml)?;
    if text.matches(connector).count() != 1 {
        return Err(LabError::InvalidConfig(format!(
            "{}: no single `{connector}`",
            server_xml.display()
        )));
    }
    // Bound when the connector starts, after the webapps are deployed: the
    // port accepts once Tomcat answers.
    write_file(
        &server_xml,
        &text.replacen(
            connector,
            &format!(
                "<Connector port=\"{TOMCAT_PORT}\" protocol=\"HTTP/1.1\" address=\"{}\" \
                 bindOnInit=\"false\"",
                ctx.v4
            ),
            1,
        ),
    )?;
    // Deployed from descriptors, the admin webapps' own META-INF/context.xml
    // (a RemoteCIDRValve allowing only loopback) is not used.
    ctx.mkdir("tomcat/conf/Catalina/localhost", 0o755)?;
    for app in ["manager", "host-manager"] {
        ctx.write(
            &format!("tomcat/conf/Catalina/localhost/{app}.xml"),
            &format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
                 <Context docBase=\"/usr/share/tomcat10-admin/{app}\" \
                 antiResourceLocking=\"false\" privileged=\"true\" />\n"
            ),
        )?;
    }
    ctx.write(
        "tomcat/conf/tomcat-users.xml",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <tomcat-users xmlns=\"http://tomcat.apache.org/xml\" version=\"1.0\">\n\
         <role rolename=\"manager-gui\"/>\n<role rolename=\"manager-script\"/>\n\
         <user username=\"tomcat\" password=\"tomcat\" roles=\"manager-gui,manager-script\"/>\n\
         </tomcat-users>\n",
    )?;
    let version = pkg_upstream("tomcat10");
    Ok(vec![
        Plan::new("tomcat", &["/usr/share/tomcat10/bin/catalina.sh", "run"])
            .env("CATALINA_HOME", "/usr/share/tomcat10")
            .env("CATALINA_BASE", &base)
            .env("CATALINA_TMPDIR", &format!("{base}/temp"))
            .env("JAVA_OPTS", "-Djava.awt.headless=true")
            // No Server header; the version is only on error pages.
            .serve(
                "tomcat10",
                TOMCAT_PORT,
                Transport::Plain,
                "http",
                None,
                None,
                None,
            )
            .app(
                "tomcat",
                version.as_deref(),
                &["tomcat-manager", "tomcat-host-manager"],
                Some("tomcat"),
            ),
    ])
}
