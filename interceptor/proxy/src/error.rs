//! What can go wrong before and while serving.

/// A bad command line or setting: the process exits with code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--route/--model-from-path {pattern:?}: {why}")]
    BadRoute { pattern: String, why: String },
    #[error("--upstream {url:?}: {why}")]
    BadUpstream { url: String, why: String },
    #[error(
        "--model {0:?}: a model name is 1 to 128 characters and at most 248 bytes, none of them control characters"
    )]
    BadModel(String),
    #[error("--model is required unless --model-from-path names the model")]
    MissingModel,
    #[error("--model-from-path {0:?} has no {{model}} parameter")]
    NoModelParam(String),
    #[error("--model-version {0:?}: 1 to 256 characters, none of them control characters")]
    BadVersion(String),
    #[error("--instance {0:?}: 1 to 256 characters, none of them control characters")]
    BadInstance(String),
}

/// A failure at run time: the process exits with code 1.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}
