//! The zoo's nginx recipe.

use crate::zoo::*;

pub(in crate::zoo) fn nginx(ctx: &Ctx) -> Result<Vec<Plan>, LabError> {
    let www = ctx.mkdir("www", 0o755)?;
    ctx.write(
        "www/index.html",
        "<html><head><title>zoo</title></head><body>zoo</body></html>\n",
    )?;
    let temp = ctx.mkdir("nginx-temp", 0o700)?;
    let (v4, v6) = (ctx.v4, ctx.v6);
    let conf = ctx.write(
        "nginx.conf",
        &format!(
            "daemon off;\nuser root;\nworker_processes 1;\npid {pid};\nerror_log stderr;\n\
             events {{ worker_connections 128; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {temp}/body;\n\
               proxy_temp_path {temp}/proxy;\n  fastcgi_temp_path {temp}/fastcgi;\n\
               uwsgi_temp_path {temp}/uwsgi;\n  scgi_temp_path {temp}/scgi;\n\
               server {{\n    listen {v4}:80;\n    listen [{v6}]:80;\n\
                 listen {v4}:443 ssl;\n    listen [{v6}]:443 ssl;\n\
                 server_name {ZOO_HOST_NAME};\n    ssl_certificate {cert};\n\
                 ssl_certificate_key {key};\n    root {www};\n  }}\n}}\n",
            pid = ctx.path("nginx.pid"),
            cert = ctx.cert(),
            key = ctx.key(),
        ),
    )?;
    let version = pkg_upstream("nginx");
    let v = version.as_deref();
    Ok(vec![
        Plan::new(
            "nginx",
            &[
                "/usr/sbin/nginx",
                "-e",
                "stderr",
                "-p",
                &ctx.path(""),
                "-c",
                &conf,
            ],
        )
        .serve(
            "nginx",
            80,
            Transport::Plain,
            "http",
            Some("nginx"),
            v,
            None,
        )
        .serve("nginx", 443, Transport::Tls, "http", Some("nginx"), v, None),
    ])
}
