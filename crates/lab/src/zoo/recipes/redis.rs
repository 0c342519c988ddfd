//! The zoo's redis recipe.

use crate::zoo::*;

pub(in crate::zoo) fn redis(ctx: &Ctx) -> Result<Vec<Plan>, LabError> {
    let version =
        version_from_output(&["redis-server", "-v"], "v=").or_else(|| pkg_upstream("redis-server"));
    let open_dir = ctx.mkdir("redis-open", 0o700)?;
    let auth_dir = ctx.mkdir("redis-auth", 0o700)?;
    let (v4, v6) = (ctx.v4.to_string(), ctx.v6.to_string());
    let common = |port: &str, dir: &str| -> Vec<String> {
        [
            "redis-server",
            "--port",
            port,
            "--bind",
            &v4,
            &v6,
            "--protected-mode",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            dir,
            "--logfile",
            "",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    };
    let open = Plan::with_args("redis-server", common("6379", &open_dir)).serve(
        "redis-server",
        6379,
        Transport::Plain,
        "redis",
        Some("Redis"),
        version.as_deref(),
        Some("no authentication"),
    );
    let mut auth_args = common("6380", &auth_dir);
    auth_args.extend(["--requirepass".to_owned(), "zoo-secret-password".to_owned()]);
    let auth = Plan::with_args("redis-server-auth", auth_args).serve(
        "redis-server",
        6380,
        Transport::Plain,
        "redis",
        Some("Redis"),
        None,
        Some("auth required"),
    );
    Ok(vec![open, auth])
}
