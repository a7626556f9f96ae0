//! `fedflow`: the command line, shaped like FATE's `flow` so its users feel at home.
//!
//! `fedflow job submit -d dsl.json -c conf.json`, `job query|list|dag|stop|rerun|wait|watch`,
//! `task query|output|log`, `data upload|list|info|delete`, `output list|metric|model|data`,
//! `test toy` (a data-plane connectivity job), and `standalone` (every service of N parties in
//! this process).
//! Human output by default, `--json` for scripts; errors print as `CODE: message` and exit
//! non-zero.

mod commands;
mod dag;
mod data;
mod model;
mod pki;
mod print;
mod standalone;
mod toy;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "fedflow",
    version,
    about = "fedflow: federated-learning job scheduler"
)]
struct Cli {
    /// The scheduler to talk to (`host:port`).
    #[arg(
        long,
        global = true,
        env = "FEDFLOW_SCHEDULER",
        default_value = "127.0.0.1:9380"
    )]
    scheduler: String,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Bearer token for a scheduler client port that asks for one (`api.token_file`).
    #[arg(long, global = true, env = "FEDFLOW_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Talk TLS to the scheduler, trusting the CA certificate(s) in this PEM file.
    #[arg(long, global = true, env = "FEDFLOW_CA_CERT")]
    ca_cert: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Jobs: submit, query, list, stop, rerun, wait, watch.
    #[command(subcommand)]
    Job(JobCommand),
    /// Tasks: query, output, log.
    #[command(subcommand)]
    Task(TaskCommand),
    /// This party's tables: upload (FATE-Flow's upload conf), list, info, delete.
    #[command(subcommand)]
    Data(DataCommand),
    /// This party's outputs of a job: list, metric, model, data.
    #[command(subcommand)]
    Output(OutputCommand),
    /// A job's models on this party: list, export (FATE-Flow's export conf).
    #[command(subcommand)]
    Model(ModelCommand),
    /// Runs every service of the listed parties in this process, on localhost.
    Standalone(StandaloneArgs),
    /// Certificates for mutual TLS between gateways: a party's CA, its gateway certificate.
    #[command(subcommand)]
    Pki(pki::PkiCommand),
    /// Connectivity tests, as FATE's `flow test`.
    #[command(subcommand)]
    Test(TestCommand),
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Lists the models a job made on this party (its id is the model id).
    List {
        #[arg(short = 'j', long = "job-id", alias = "model-id")]
        job_id: String,
    },
    /// Writes a job's models on this party to a directory, per FATE-Flow's export conf
    /// (`{model_id, model_version, role?, party_id?, path}`).
    Export {
        #[arg(short = 'c', long = "conf-path", alias = "conf")]
        conf: PathBuf,
    },
}

#[derive(Subcommand)]
enum TestCommand {
    /// A two-component job in which every party sends a value to the guest over the data
    /// plane; succeeds when the guest received every party's value (FATE's `flow test toy`).
    Toy {
        #[arg(short = 'g', long)]
        guest: String,
        /// Host party ids, comma separated.
        #[arg(long = "host", value_delimiter = ',')]
        hosts: Vec<String>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 120.0)]
        timeout: f64,
    },
}

#[derive(Subcommand)]
enum JobCommand {
    /// Submits a FATE 1.x DSL v2 + runtime conf v2 (`-d dsl.json -c conf.json`), or a FATE 2.x
    /// DAG in YAML or JSON (`-c dag.yaml`, as FATE 2's `flow job submit -c`).
    Submit {
        /// The FATE 1.x DSL; without it, `-c` is a FATE 2.x DAG.
        #[arg(short = 'd', long = "dsl-path", alias = "dsl")]
        dsl: Option<PathBuf>,
        /// The FATE 1.x runtime conf, or (without `-d`) the FATE 2.x DAG.
        #[arg(short = 'c', long = "conf-path", alias = "conf")]
        conf: PathBuf,
        /// Idempotency key: submitting again with it returns the same job.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Shows a job.
    Query {
        #[arg(short = 'j', long = "job-id")]
        job_id: String,
    },
    /// Lists jobs this scheduler schedules, newest first, one page at a time; prints the
    /// next page's token when there is more.
    List {
        /// Jobs per page (the scheduler's default is 20, at most 1000).
        #[arg(short = 'l', long)]
        limit: Option<u32>,
        /// Only jobs in any of these statuses (comma separated: running,waiting).
        #[arg(long, value_delimiter = ',', value_parser = commands::parse_job_status)]
        status: Vec<i32>,
        /// Only jobs in which this role takes part.
        #[arg(long)]
        role: Option<String>,
        /// Only jobs in which this party takes part (in --role, when given).
        #[arg(long = "party", alias = "party-id")]
        party: Option<String>,
        /// Only jobs submitted at or after this time (RFC 3339 or ms since the epoch).
        #[arg(long, value_parser = commands::parse_time_ms)]
        after: Option<i64>,
        /// Only jobs submitted before this time (RFC 3339 or ms since the epoch).
        #[arg(long, value_parser = commands::parse_time_ms)]
        before: Option<i64>,
        /// Only jobs whose id contains this text (jobs have no tags).
        #[arg(long)]
        text: Option<String>,
        /// The page after the one that printed this token.
        #[arg(long)]
        page_token: Option<String>,
    },
    /// Prints a job's DAG with each task's federated status (Mermaid or Graphviz dot).
    Dag {
        #[arg(short = 'j', long = "job-id")]
        job_id: String,
        #[arg(long, value_enum, default_value = "mermaid")]
        format: dag::Format,
    },
    /// Cancels a job on every party.
    Stop {
        #[arg(short = 'j', long = "job-id")]
        job_id: String,
    },
    /// Reruns the failed components (or one, with -c) and everything downstream of them.
    Rerun {
        #[arg(short = 'j', long = "job-id")]
        job_id: String,
        #[arg(short = 'c', long = "component-name", alias = "cpn")]
        component: Option<String>,
        /// Rerun successful components too.
        #[arg(long)]
        force: bool,
    },
    /// Waits for a job to end: exit 0 on success, 1 otherwise, 2 on timeout.
    Wait {
        #[arg(short = 'j', long = "job-id")]
        job_id: String,
        /// Give up after this many seconds.
        #[arg(long)]
        timeout: Option<f64>,
    },
    /// Shows every task's status on every party as it changes, until the job ends.
    Watch {
        #[arg(short = 'j', long = "job-id")]
        job_id: String,
    },
}

#[derive(Subcommand)]
enum TaskCommand {
    /// Shows a job's tasks with each party's status.
    Query {
        #[arg(short = 'j', long = "job-id")]
        job_id: String,
        /// Every version, not only the latest.
        #[arg(long)]
        all_versions: bool,
    },
    /// Prints a component's data output on one participant.
    Output {
        #[arg(short = 'j', long = "job-id")]
        job_id: String,
        #[arg(short = 'c', long = "component-name", alias = "cpn")]
        component: String,
        #[arg(short = 'r', long)]
        role: String,
        #[arg(short = 'p', long = "party-id")]
        party_id: String,
    },
    /// Prints the log of a task of this party (its latest attempt).
    Log {
        #[arg(short = 'j', long = "job-id")]
        job_id: String,
        #[arg(short = 'c', long = "component-name", alias = "cpn")]
        component: String,
        #[arg(short = 'r', long)]
        role: String,
        #[arg(short = 'p', long = "party-id")]
        party_id: String,
        /// Only the last N lines.
        #[arg(long, default_value_t = 0)]
        tail: u32,
        /// Keep printing new lines until the task ends.
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Uploads a CSV as a table of this party, per a FATE-Flow upload conf (`file`, `head`,
    /// `partitions`, `extend_sid`, `meta`, `namespace`, `name`, `drop`).
    Upload {
        #[arg(short = 'c', long = "conf-path", alias = "conf")]
        conf: PathBuf,
    },
    /// Lists this party's tables.
    List {
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Shows one table: columns, row count, meta.
    Info {
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        name: String,
    },
    /// Deletes one table and its file.
    Delete {
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        name: String,
    },
}

/// The job, component and party an `output` command is about.
#[derive(clap::Args)]
struct OutputOf {
    #[arg(short = 'j', long = "job-id")]
    job_id: String,
    #[arg(short = 'c', long = "component-name", alias = "cpn")]
    component: Option<String>,
    /// The party whose outputs are meant; only the scheduler's own party's are served.
    #[arg(short = 'p', long = "party-id", default_value = "")]
    party_id: String,
}

impl From<OutputOf> for data::Which {
    fn from(o: OutputOf) -> data::Which {
        data::Which {
            job_id: o.job_id,
            component: o.component,
            party_id: o.party_id,
        }
    }
}

#[derive(Subcommand)]
enum OutputCommand {
    /// Lists a job's outputs on this party (of one component with -c).
    List(OutputOf),
    /// Prints a component's metric.
    Metric(OutputOf),
    /// Saves a component's model under DIR.
    Model {
        #[command(flatten)]
        of: OutputOf,
        #[arg(long)]
        download: PathBuf,
    },
    /// Prints a component's data output (its first rows).
    Data {
        #[command(flatten)]
        of: OutputOf,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

#[derive(clap::Args)]
pub struct StandaloneArgs {
    /// Party ids, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "9999,10000,10001")]
    parties: Vec<String>,
    /// Where the SQLite files and task directories go.
    #[arg(long, default_value = "fedflow-data")]
    data_dir: PathBuf,
    /// Cores each party can give to jobs.
    #[arg(long, default_value_t = 20)]
    cores: u32,
    /// Runs the sample 3-party job (examples/sum-diamond), prints the result and exits.
    #[arg(long)]
    demo: bool,
    /// Plaintext between the parties' gateways, identities taken from messages (development
    /// only). By default the gateways use mutual TLS with a PKI per party under
    /// `<data-dir>/pki`.
    #[arg(long)]
    insecure: bool,
    /// The python of a venv holding pyfate 2.2 (`scripts/setup-fate.sh` prints it): every
    /// party runs FATE 2.x components with it.
    #[arg(long, env = "FEDFLOW_FATE_PYTHON")]
    fate_python: Option<PathBuf>,
}

/// How the job and task commands reach the scheduler, from the global options.
fn client_ctx(cli: &Cli) -> commands::Ctx {
    commands::Ctx {
        token: cli.token.clone(),
        ca_cert: cli.ca_cert.clone(),
        ..commands::Ctx::new(&cli.scheduler, cli.json)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // How the job and task commands reach the scheduler.
    let ctx = client_ctx(&cli);
    let result = match cli.command {
        Command::Standalone(args) => standalone::run(args).await,
        Command::Pki(command) => pki::run(command),
        Command::Test(TestCommand::Toy {
            guest,
            hosts,
            timeout,
        }) => toy::run(&ctx, &guest, &hosts, timeout).await,
        Command::Job(command) => match command {
            JobCommand::Submit {
                dsl,
                conf,
                request_id,
            } => commands::submit(&ctx, dsl.as_deref(), &conf, request_id).await,
            JobCommand::Query { job_id } => commands::query(&ctx, &job_id).await,
            JobCommand::List {
                limit,
                status,
                role,
                party,
                after,
                before,
                text,
                page_token,
            } => {
                let request = fedflow_proto::scheduler::v1::ListJobsRequest {
                    limit: limit.unwrap_or(0),
                    status,
                    role: role.unwrap_or_default(),
                    party_id: party.unwrap_or_default(),
                    submitted_after_ms: after.unwrap_or(0),
                    submitted_before_ms: before.unwrap_or(0),
                    text: text.unwrap_or_default(),
                    page_token: page_token.unwrap_or_default(),
                };
                commands::list(&ctx, request).await
            }
            JobCommand::Dag { job_id, format } => commands::dag(&ctx, &job_id, format).await,
            JobCommand::Stop { job_id } => commands::stop(&ctx, &job_id).await,
            JobCommand::Rerun {
                job_id,
                component,
                force,
            } => commands::rerun(&ctx, &job_id, component, force).await,
            JobCommand::Wait { job_id, timeout } => commands::wait(&ctx, &job_id, timeout).await,
            JobCommand::Watch { job_id } => commands::watch(&ctx, &job_id).await,
        },
        Command::Task(command) => match command {
            TaskCommand::Query {
                job_id,
                all_versions,
            } => commands::tasks(&ctx, &job_id, all_versions).await,
            TaskCommand::Output {
                job_id,
                component,
                role,
                party_id,
            } => commands::output(&ctx, &job_id, &component, &role, &party_id).await,
            TaskCommand::Log {
                job_id,
                component,
                role,
                party_id,
                tail,
                follow,
            } => {
                let of = data::LogOf {
                    job_id,
                    component,
                    role,
                    party_id,
                    tail,
                    follow,
                };
                data::task_log(&ctx, of).await
            }
        },
        Command::Data(command) => match command {
            DataCommand::Upload { conf } => data::upload(&ctx, &conf).await,
            DataCommand::List { namespace } => data::list(&ctx, namespace).await,
            DataCommand::Info { namespace, name } => data::info(&ctx, &namespace, &name).await,
            DataCommand::Delete { namespace, name } => data::delete(&ctx, &namespace, &name).await,
        },
        Command::Model(command) => match command {
            ModelCommand::List { job_id } => model::list(&ctx, &job_id).await,
            ModelCommand::Export { conf } => model::export(&ctx, &conf).await,
        },
        Command::Output(command) => match command {
            OutputCommand::List(of) => data::output_list(&ctx, of.into()).await,
            OutputCommand::Metric(of) => data::output_metric(&ctx, of.into()).await,
            OutputCommand::Model { of, download } => {
                data::output_model(&ctx, of.into(), &download).await
            }
            OutputCommand::Data { of, limit } => data::output_data(&ctx, of.into(), limit).await,
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
