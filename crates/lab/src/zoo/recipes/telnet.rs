//! The zoo's telnet recipe.

use crate::zoo::*;

pub(in crate::zoo) fn telnet(ctx: &Ctx) -> Result<Vec<Plan>, LabError> {
    let conf = ctx.write(
        "inetd.conf",
        &format!(
            "{}:telnet stream tcp nowait root /usr/sbin/telnetd telnetd\n",
            ctx.v4
        ),
    )?;
    Ok(vec![
        Plan::new(
            "inetutils-inetd",
            &["/usr/sbin/inetutils-inetd", "-d", &conf],
        )
        .serve(
            "inetutils-telnetd",
            23,
            Transport::Plain,
            "telnet",
            None,
            None,
            None,
        ),
    ])
}
