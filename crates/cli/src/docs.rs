//! Shell completions and manual pages, generated from the command line's own definition
//! (so they name every subcommand and flag the binary has).

use crate::Failure;
use clap::{Args, CommandFactory, ValueEnum};
use std::path::{Path, PathBuf};

/// The shells completions are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Shell {
    /// bash (bash-completion: /usr/share/bash-completion/completions/portgate).
    Bash,
    /// zsh (a `_portgate` file on `$fpath`).
    Zsh,
    /// fish (~/.config/fish/completions/portgate.fish).
    Fish,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub(crate) shell: Shell,
}

#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// Directory to write the pages to: portgate.1 and one per subcommand
    /// (portgate-scan.1, portgate-data-import-nvd.1, ...). Created when missing.
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: PathBuf,
}

/// `portgate completions SHELL`: the completion script on standard output.
pub(crate) fn completions(args: CompletionsArgs) -> Result<u8, Failure> {
    let mut command = crate::args::Cli::command();
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "portgate", &mut out);
    crate::write_stdout(&String::from_utf8_lossy(&out));
    Ok(0)
}

/// `portgate man --dir DIR`: one page for the command and one per subcommand, nested
/// subcommands included.
pub(crate) fn man(args: ManArgs) -> Result<u8, Failure> {
    std::fs::create_dir_all(&args.dir).map_err(|e| crate::exit::cannot_write(&args.dir, &e))?;
    let mut command = crate::args::Cli::command();
    command.build();
    let written = write_pages(&command, "portgate", &args.dir)?;
    eprintln!(
        "portgate: {written} manual page(s) written to {}",
        args.dir.display()
    );
    Ok(0)
}

/// The page of `command` as `name.1` in `dir`, then those of its subcommands; returns how
/// many were written.
fn write_pages(command: &clap::Command, name: &str, dir: &Path) -> Result<usize, Failure> {
    let page = command.clone().name(name.to_owned());
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .map_err(|e| Failure::scan(format!("rendering the manual page of {name}: {e}")))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, out).map_err(|e| crate::exit::cannot_write(&path, &e))?;
    let mut written = 1;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        written += write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(written)
}
