//! Errors of training and evaluation.

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Model(#[from] mnist_model::ModelError),
    #[error("the loss became {value} by step {step} of epoch {epoch}; lower --lr (now {lr}) or check the data. The last good checkpoint was kept")]
    NonFiniteLoss {
        epoch: usize,
        step: usize,
        value: f32,
        lr: f64,
    },
    #[error("{0}")]
    Config(String),
    #[error("{path}: cannot resume: {problem}")]
    Resume {
        path: std::path::PathBuf,
        problem: String,
    },
}
