//! The zoo's vnc recipe.

use crate::zoo::*;

pub(in crate::zoo) fn vnc(ctx: &Ctx) -> Result<Vec<Plan>, LabError> {
    // An X display number no other X server on this machine uses (the lock
    // files and sockets are shared across namespaces).
    let display = (40..400)
        .map(|n| n + std::process::id() % 200)
        .find(|n| {
            !Path::new(&format!("/tmp/.X{n}-lock")).exists()
                && !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
        })
        .ok_or_else(|| LabError::InvalidConfig("no free X display number".to_owned()))?;
    let display = format!(":{display}");
    let interface = ctx.v4.to_string();
    Ok(vec![
        Plan::new(
            "Xvnc",
            &[
                "/usr/bin/Xvnc",
                &display,
                "-rfbport",
                "5900",
                "-interface",
                &interface,
                "-SecurityTypes",
                "None",
                "-nolisten",
                "tcp",
                "-geometry",
                "640x480",
            ],
        )
        .env("HOME", &ctx.path(""))
        .serve(
            "tigervnc-standalone-server",
            5900,
            Transport::Plain,
            "vnc",
            None,
            None,
            Some("protocol 3.8"),
        ),
    ])
}
