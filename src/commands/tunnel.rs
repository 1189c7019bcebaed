//! `devenv tunnel-supervisor` (hidden): the background process that `up` starts for
//! `connect = "tunnel"` and `down` stops. It is not meant to be run by hand; its files and
//! behaviour are described in [`crate::offload::tunnel`].

use std::path::PathBuf;

use crate::error::Error;
use crate::offload::tunnel::{self, Files};

/// Forward the offloaded services of one project (started by `devenv up`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The project's state directory, holding tunnel.json.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
}

pub async fn exec(args: Args) -> Result<i32, Error> {
    let files = Files::new(&args.dir);
    tunnel::supervise(&files).await.map_err(|e| Error::Failed {
        message: format!("tunnel supervisor: {e}"),
        help: format!("its log: {}", files.log().display()),
        code: 1,
        diagnostic: crate::diagnostic::codes::TUNNEL,
    })?;
    Ok(0)
}
