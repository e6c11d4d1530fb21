//! The `warez-pipe` binary: everything lives in the library; this only hands over to the CLI.

fn main() -> std::process::ExitCode {
    warez_pipe::cli::main()
}
