//! The zoo's rabbitmq recipe: a node of its own (name, cookie, epmd,
//! Mnesia, logs), never the machine's `rabbit@localhost`.

use crate::zoo::*;

pub(in crate::zoo) fn rabbitmq(ctx: &Ctx) -> Result<Vec<Plan>, LabError> {
    let dir = ctx.mkdir("rabbitmq", 0o755)?;
    // The Erlang cookie is made here.
    let home = ctx.mkdir("rabbitmq/home", 0o700)?;
    // Empty: /etc/rabbitmq/rabbitmq-env.conf may name the machine's node.
    let env_conf = ctx.write("rabbitmq/rabbitmq-env.conf", "")?;
    let plugins = ctx.write("rabbitmq/enabled_plugins", "[rabbitmq_management].\n")?;
    // loopback_users = none: guest/guest works from outside the namespace.
    let conf = ctx.write(
        "rabbitmq/rabbitmq.conf",
        &format!(
            "listeners.tcp.default = {v4}:5672\n\
             management.tcp.ip = {v4}\nmanagement.tcp.port = 15672\n\
             loopback_users = none\n\
             distribution.listener.interface = 127.0.0.1\n",
            v4 = ctx.v4
        ),
    )?;
    let version = pkg_upstream("rabbitmq-server");
    let v = version.as_deref();
    Ok(vec![
        // Run as root directly: /usr/sbin/rabbitmq-server would switch to
        // the rabbitmq user and log to /var/log/rabbitmq. The node starts
        // its own epmd, on the namespace's loopback.
        Plan::new("rabbitmq", &["/usr/lib/rabbitmq/bin/rabbitmq-server"])
            .env("HOME", &home)
            .env("RABBITMQ_CONF_ENV_FILE", &env_conf)
            .env("RABBITMQ_NODENAME", "zoo@localhost")
            .env("RABBITMQ_CONFIG_FILE", &conf)
            .env(
                "RABBITMQ_ADVANCED_CONFIG_FILE",
                &format!("{dir}/advanced.config"),
            )
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", &plugins)
            .env("RABBITMQ_MNESIA_BASE", &format!("{dir}/mnesia"))
            .env("RABBITMQ_LOG_BASE", &format!("{dir}/log"))
            .env("RABBITMQ_DIST_PORT", "25673")
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .serve(
                "rabbitmq-server",
                5672,
                Transport::Plain,
                "amqp",
                Some("RabbitMQ"),
                v,
                None,
            )
            // The management UI's web server (Server: Cowboy, no version).
            .serve(
                "rabbitmq-server",
                15672,
                Transport::Plain,
                "http",
                Some("Cowboy"),
                None,
                None,
            )
            .app("rabbitmq-management", v, &[], Some("guest")),
    ])
}
