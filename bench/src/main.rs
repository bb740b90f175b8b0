//! `coracle-bench`: coracle's benchmark harness.
//!
//! `coracle-bench log` appends to a segment log for a given time or size, reopens it
//! (recovery), measures the disk's own limits in the same run and directory, and prints
//! every log figure as a ratio to the matching limit. See `docs/BENCH-log-draft.md`.

mod args;
mod disk_probe;
mod log_bench;
mod report;
mod run;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use glommio::{LocalExecutorBuilder, Placement};

use crate::args::{Cli, Command, LogArgs};
use crate::disk_probe::ProbeOptions;
use crate::report::Report;

/// Errors of a benchmark run: they end it with a message.
pub type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Name of the log's directory inside the working directory.
const LOG_DIRECTORY_NAME: &str = "log";

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            if let Err(message) = args.check() {
                Cli::command()
                    .error(ErrorKind::ArgumentConflict, message)
                    .exit();
            }
            match run::run(&args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("coracle-bench run: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Log(args) => {
            if let Err(message) = args.check() {
                let mut command = Cli::command();
                // Gives the subcommand its full name for the usage line.
                command.build();
                let error = match command.find_subcommand_mut("log") {
                    Some(log) => log.error(ErrorKind::ArgumentConflict, message),
                    None => Cli::command().error(ErrorKind::ArgumentConflict, message),
                };
                error.exit();
            }
            match log_command(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("coracle-bench log: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The working directory of a run, cleaned up when dropped unless asked to keep it: the
/// whole directory if the run made it, the log in it otherwise.
struct WorkDirectory {
    path: PathBuf,
    made: bool,
    keep: bool,
}

impl WorkDirectory {
    fn prepare(dir: Option<&Path>, keep: bool) -> BenchResult<WorkDirectory> {
        let (path, made) = match dir {
            Some(path) => {
                let log = path.join(LOG_DIRECTORY_NAME);
                if log.exists() {
                    return Err(format!(
                        "{} exists: remove it or choose another --dir",
                        log.display()
                    )
                    .into());
                }
                std::fs::create_dir_all(path)
                    .map_err(|error| format!("cannot create {}: {error}", path.display()))?;
                (path.to_path_buf(), false)
            }
            None => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |since| since.subsec_nanos());
                let path = std::env::temp_dir()
                    .join(format!("coracle-bench-{}-{nanos}", std::process::id()));
                std::fs::create_dir(&path)
                    .map_err(|error| format!("cannot create {}: {error}", path.display()))?;
                (path, true)
            }
        };
        Ok(WorkDirectory { path, made, keep })
    }

    fn log(&self) -> PathBuf {
        self.path.join(LOG_DIRECTORY_NAME)
    }
}

impl Drop for WorkDirectory {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept the log in {}", self.log().display());
            return;
        }
        let _ = if self.made {
            std::fs::remove_dir_all(&self.path)
        } else {
            std::fs::remove_dir_all(self.log())
        };
    }
}

fn log_command(args: LogArgs) -> BenchResult<()> {
    let work = WorkDirectory::prepare(args.dir.as_deref(), args.keep)?;
    let directory = work.path.clone();
    let log_directory = work.log();

    let fio = if args.fio {
        if disk_probe::fio_available() {
            eprintln!("running fio in {} ...", directory.display());
            Some(disk_probe::fio(&directory, args.probe_size)?)
        } else {
            eprintln!("--fio: fio is not on PATH; only the own probe runs");
            None
        }
    } else {
        None
    };

    let probe = (!args.no_probe).then_some(ProbeOptions {
        size_bytes: args.probe_size,
        syncs: args.probe_syncs,
    });
    let io_memory = usize::try_from(args.io_memory)?;
    let run_args = args.clone();
    let probe_directory = directory.clone();
    let outcome = LocalExecutorBuilder::new(Placement::Unbound)
        .name("coracle-bench")
        .io_memory(io_memory)
        .spawn(move || async move {
            let run = async {
                let disk = match probe {
                    Some(options) => {
                        eprintln!("probing the disk in {} ...", probe_directory.display());
                        Some(disk_probe::probe(&probe_directory, options).await?)
                    }
                    None => None,
                };
                eprintln!(
                    "appending for {:?} or {} bytes (after {:?} of warm-up) ...",
                    run_args.duration, run_args.size, run_args.warmup
                );
                let log = log_bench::run(&log_directory, &run_args).await?;
                BenchResult::Ok((disk, log))
            };
            run.await.map_err(|error| error.to_string())
        })
        .map_err(|error| format!("cannot start a glommio executor: {error}"))?
        .join()
        .map_err(|error| format!("the glommio executor failed: {error}"))?;
    let (disk, log) = outcome?;

    let report = Report {
        args: args.clone(),
        directory,
        disk,
        fio,
        log,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
    } else {
        print!("{}", report.table());
    }
    drop(work);
    Ok(())
}
