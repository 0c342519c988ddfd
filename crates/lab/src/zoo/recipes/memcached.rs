//! The zoo's memcached recipe.

use crate::zoo::*;

pub(in crate::zoo) fn memcached(ctx: &Ctx) -> Result<Vec<Plan>, LabError> {
    let version = version_from_output(&["memcached", "-V"], "memcached ")
        .or_else(|| pkg_upstream("memcached"));
    let listen = format!("{},{}", ctx.v4, ctx.v6);
    let plan = |port: u16| {
        let port_arg = port.to_string();
        let name = if port == 11211 {
            "memcached"
        } else {
            "memcached-2"
        };
        Plan::new(
            name,
            &[
                "memcached",
                "-u",
                "nobody",
                "-l",
                &listen,
                "-p",
                &port_arg,
                "-U",
                "0",
                "-m",
                "16",
            ],
        )
        .serve(
            "memcached",
            port,
            Transport::Plain,
            "memcached",
            Some("Memcached"),
            version.as_deref(),
            None,
        )
    };
    Ok(vec![plan(11211), plan(11212)])
}
