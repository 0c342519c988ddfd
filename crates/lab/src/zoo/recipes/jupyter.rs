//! The zoo's jupyter recipe: one server with a token, one without.

use crate::zoo::*;

pub(in crate::zoo) fn jupyter(ctx: &Ctx) -> Result<Vec<Plan>, LabError> {
    let version = pkg_upstream("python3-notebook");
    let v = version.as_deref();
    // Only `/api` (the version) answers without the token.
    let token = jupyter_plan(
        ctx,
        "jupyter",
        8888,
        &["--NotebookApp.token=zoo-notebook-token"],
        v,
    )?
    .app("jupyter", v, &[], None);
    // No token, no password: kernels and files for anyone.
    let open = jupyter_plan(
        ctx,
        "jupyter-open",
        8889,
        &["--NotebookApp.token=", "--NotebookApp.password="],
        v,
    )?
    .app("jupyter", v, &["jupyter-kernels", "jupyter-contents"], None);
    Ok(vec![token, open])
}

/// A notebook server on `port` with its own home, configuration and
/// runtime directories.
fn jupyter_plan(
    ctx: &Ctx,
    name: &'static str,
    port: u16,
    auth: &[&str],
    version: Option<&str>,
) -> Result<Plan, LabError> {
    let home = ctx.mkdir(&format!("{name}-home"), 0o700)?;
    let notebooks = ctx.mkdir(&format!("{name}-home/notebooks"), 0o700)?;
    let ip = format!("--ip={}", ctx.v4);
    let port_arg = format!("--port={port}");
    let dir = format!("--notebook-dir={notebooks}");
    let mut args = vec![
        "/usr/bin/python3",
        "-m",
        "notebook",
        "--no-browser",
        "--allow-root",
        &ip,
        &port_arg,
        "--port-retries=0",
        &dir,
    ];
    args.extend(auth);
    Ok(Plan::new(name, &args)
        .env("HOME", &home)
        .env("JUPYTER_RUNTIME_DIR", &format!("{home}/runtime"))
        .env("JUPYTER_CONFIG_DIR", &format!("{home}/config"))
        .env("JUPYTER_DATA_DIR", &format!("{home}/data"))
        .env("IPYTHONDIR", &format!("{home}/ipython"))
        .serve(
            "python3-notebook",
            port,
            Transport::Plain,
            "http",
            Some("Jupyter Notebook"),
            version,
            // The web server under it, named from its Server header.
            Some("Tornado httpd"),
        ))
}
