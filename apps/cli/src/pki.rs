//! `fedflow pki`: a party's certificates for mutual TLS between gateways.
//!
//! - `fedflow pki init --party 9999 --out pki/9999 [--host gw.example.org]`: a new CA for the
//!   party and a first gateway certificate. Give `ca.crt` to the other parties: their route
//!   to this party names it (`routes."9999" = { address = "...", ca = ".../ca.crt" }`).
//! - `fedflow pki issue --party 9999 --dir pki/9999`: a new gateway key and certificate from
//!   the same CA (rotation; the gateway picks them up without a restart).

use std::path::PathBuf;
use std::process::ExitCode;

use fedflow_tls::pki::{Layout, Validity};

use crate::commands::{self, CliError};

#[derive(clap::Subcommand)]
pub enum PkiCommand {
    /// Creates a party's CA and its gateway's certificate and key in a new directory.
    Init {
        /// The party id the certificate names (`spiffe://fedflow/party/<id>`).
        #[arg(long)]
        party: String,
        /// The directory to write (ca.crt, ca.key, gateway.crt, gateway.key).
        #[arg(long)]
        out: PathBuf,
        /// Host names or IP addresses of the gateway, added as DNS/IP SANs for tools that
        /// check them (fedflow itself checks the party). Repeatable.
        #[arg(long = "host", default_values_t = ["localhost".to_owned(), "127.0.0.1".to_owned()])]
        hosts: Vec<String>,
        /// How long the CA is valid.
        #[arg(long, default_value_t = 3650)]
        ca_days: u32,
        /// How long the gateway certificate is valid.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Issues a new gateway key and certificate from the directory's CA (rotation).
    Issue {
        #[arg(long)]
        party: String,
        /// A directory made by `fedflow pki init`.
        #[arg(long)]
        dir: PathBuf,
        #[arg(long = "host", default_values_t = ["localhost".to_owned(), "127.0.0.1".to_owned()])]
        hosts: Vec<String>,
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
}

pub fn run(command: PkiCommand) -> commands::Result {
    match command {
        PkiCommand::Init {
            party,
            out,
            hosts,
            ca_days,
            days,
        } => {
            let layout = Layout::new(&out);
            layout
                .init(
                    &party,
                    &hosts,
                    Validity::days(ca_days),
                    Validity::days(days),
                )
                .map_err(|e| CliError(format!("FAILED_PRECONDITION: {e}")))?;
            println!(
                "party {party}: CA {} (key {}), gateway certificate {} (key {})",
                layout.ca_cert().display(),
                layout.ca_key().display(),
                layout.cert().display(),
                layout.key().display()
            );
            println!(
                "give {} to the other parties: their route to party {party} names it as `ca`",
                layout.ca_cert().display()
            );
        }
        PkiCommand::Issue {
            party,
            dir,
            hosts,
            days,
        } => {
            let layout = Layout::new(&dir);
            layout
                .issue(&party, &hosts, Validity::days(days))
                .map_err(|e| CliError(format!("FAILED_PRECONDITION: {e}")))?;
            println!(
                "party {party}: new gateway certificate {} (key {}); a running gateway picks it up within its reload interval",
                layout.cert().display(),
                layout.key().display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
