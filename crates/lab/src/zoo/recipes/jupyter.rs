//! The zoo's jupyter recipe.

use crate::zoo::*;

pub(in crate::zoo) fn jupyter(ctx: &Ctx) -> Result<Vec<Plan>, LabError> {
    let home = ctx.mkdir("jupyter-home", 0o700)?;
    let notebooks = ctx.mkdir("jupyter-home/notebooks", 0o700)?;
    let ip = format!("--ip={}", ctx.v4);
    let dir = format!("--notebook-dir={notebooks}");
    let version = pkg_upstream("python3-notebook");
    Ok(vec![
        Plan::new(
            "jupyter",
            &[
                "/usr/bin/python3",
                "-m",
                "notebook",
                "--no-browser",
                "--allow-root",
                &ip,
                "--port=8888",
                "--port-retries=0",
                &dir,
                "--NotebookApp.token=zoo-notebook-token",
            ],
        )
        .env("HOME", &home)
        .env("JUPYTER_RUNTIME_DIR", &format!("{home}/runtime"))
        .env("JUPYTER_CONFIG_DIR", &format!("{home}/config"))
        .env("JUPYTER_DATA_DIR", &format!("{home}/data"))
        .env("IPYTHONDIR", &format!("{home}/ipython"))
        .serve(
            "python3-notebook",
            8888,
            Transport::Plain,
            "http",
            Some("Jupyter Notebook"),
            version.as_deref(),
            // The web server under it, named from its Server header.
            Some("Tornado httpd"),
        ),
    ])
}
