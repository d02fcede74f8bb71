//! The checkpoint format: one safetensors file that PyTorch, NumPy and candle read as they are.
//!
//! * Model tensors use PyTorch's names and layouts (`conv1.weight` `[32, 1, 3, 3]`, `fc1.weight`
//!   `[128, 5408]` with inputs flattened in (C, H, W) order). Batch-norm layers also carry
//!   PyTorch's `num_batches_tracked` (i64), so `load_state_dict` accepts them strictly.
//! * Optimizer state, when present, is stored under `optim.` (for example
//!   `optim.exp_avg.fc1.weight`); it is what makes `--resume` exact. Loaders of the model alone
//!   skip those names.
//! * The header's metadata holds `format = "pt"` and `mnist.*` keys: format version, project
//!   version, architecture and its config, normalization, epoch, accuracy, training config and
//!   optimizer step (see [`CheckpointMeta`]).
//!
//! Files are written to a temporary file in the same directory, synced, then renamed over the
//! target, so a crash leaves either the old checkpoint or the new one, never a torn file.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use mnist_data::Normalization;
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use crate::{Architecture, ModelError, Network, Result};

/// Bumped whenever the meaning of a name or metadata key changes. Version 2 records a network as
/// its layer list (`mnist.model_config` = `{"name": …, "layers": […]}`); version 1 recorded a
/// named network with its widths, and such files still load.
pub const FORMAT_VERSION: u32 = 2;
/// Prefix of optimizer-state tensors.
pub const OPTIMIZER_PREFIX: &str = "optim.";
/// Checkpoints of these models are a few MB; anything far larger is not one of ours and is
/// refused before it is read into memory.
const MAX_CHECKPOINT_BYTES: u64 = 1 << 30;

/// Everything a checkpoint says about itself besides the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub architecture: Architecture,
    pub normalization: Normalization,
    /// Completed training epochs.
    pub epoch: usize,
    /// Test accuracy (0-1) measured after `epoch`, when it was measured.
    pub test_accuracy: Option<f64>,
    /// The training configuration, as the trainer serializes it (opaque to this crate).
    pub training: Option<serde_json::Value>,
    /// The optimizer's kind and step count, as the trainer serializes it.
    pub optimizer: Option<serde_json::Value>,
    /// The version of this project that wrote the file.
    pub written_by: String,
}

/// Metadata keys in the safetensors header.
mod key {
    pub const FORMAT: &str = "format";
    pub const FORMAT_VERSION: &str = "mnist.format_version";
    pub const WRITTEN_BY: &str = "mnist.version";
    pub const ARCHITECTURE: &str = "mnist.architecture";
    pub const MODEL_CONFIG: &str = "mnist.model_config";
    pub const NORMALIZATION: &str = "mnist.normalization";
    pub const EPOCH: &str = "mnist.epoch";
    pub const TEST_ACCURACY: &str = "mnist.test_accuracy";
    pub const TRAINING: &str = "mnist.training";
    pub const OPTIMIZER: &str = "mnist.optimizer";
}

impl CheckpointMeta {
    pub fn new(architecture: Architecture, normalization: Normalization) -> Self {
        Self {
            architecture,
            normalization,
            epoch: 0,
            test_accuracy: None,
            training: None,
            optimizer: None,
            written_by: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// The metadata as string pairs: the safetensors header, and ONNX's `metadata_props` on export.
    pub fn to_header(&self) -> HashMap<String, String> {
        let mut h = HashMap::new();
        h.insert(key::FORMAT.into(), "pt".into());
        h.insert(key::FORMAT_VERSION.into(), FORMAT_VERSION.to_string());
        h.insert(key::WRITTEN_BY.into(), self.written_by.clone());
        h.insert(key::ARCHITECTURE.into(), self.architecture.name().into());
        h.insert(key::MODEL_CONFIG.into(), to_json(&self.architecture));
        h.insert(key::NORMALIZATION.into(), to_json(&self.normalization));
        h.insert(key::EPOCH.into(), self.epoch.to_string());
        if let Some(acc) = self.test_accuracy {
            h.insert(key::TEST_ACCURACY.into(), format!("{acc}"));
        }
        if let Some(t) = &self.training {
            h.insert(key::TRAINING.into(), t.to_string());
        }
        if let Some(o) = &self.optimizer {
            h.insert(key::OPTIMIZER.into(), o.to_string());
        }
        h
    }

    /// Reads our keys back. `Ok(None)` when the file has no `mnist.*` metadata at all (a file
    /// written by another tool); an error when it has some but they do not make sense.
    fn from_header(header: &HashMap<String, String>, path: &Path) -> Result<Option<Self>> {
        let Some(config) = header.get(key::MODEL_CONFIG) else {
            return Ok(None);
        };
        let bad = |problem: String| ModelError::BadMetadata {
            path: path.to_path_buf(),
            problem,
        };
        let version: u32 = header
            .get(key::FORMAT_VERSION)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                bad(format!(
                    "metadata {} is missing or not a number",
                    key::FORMAT_VERSION
                ))
            })?;
        if version > FORMAT_VERSION {
            return Err(bad(format!(
                "checkpoint format version {version} is newer than this build understands ({FORMAT_VERSION}); upgrade mnist"
            )));
        }
        let parse_json = |k: &str, v: &str| -> Result<serde_json::Value> {
            serde_json::from_str(v).map_err(|e| bad(format!("metadata {k} is not valid JSON: {e}")))
        };
        let architecture: Architecture = serde_json::from_str(config).map_err(|e| {
            bad(format!(
                "metadata {} does not describe a known architecture: {e}",
                key::MODEL_CONFIG
            ))
        })?;
        let normalization: Normalization = header
            .get(key::NORMALIZATION)
            .map(|v| serde_json::from_str(v))
            .transpose()
            .map_err(|e| bad(format!("metadata {} is invalid: {e}", key::NORMALIZATION)))?
            .ok_or_else(|| bad(format!("metadata {} is missing", key::NORMALIZATION)))?;
        let epoch = match header.get(key::EPOCH) {
            Some(v) => v
                .parse()
                .map_err(|_| bad(format!("metadata {} = {v:?} is not a number", key::EPOCH)))?,
            None => 0,
        };
        let test_accuracy = match header.get(key::TEST_ACCURACY) {
            Some(v) => Some(v.parse().map_err(|_| {
                bad(format!(
                    "metadata {} = {v:?} is not a number",
                    key::TEST_ACCURACY
                ))
            })?),
            None => None,
        };
        Ok(Some(Self {
            architecture,
            normalization,
            epoch,
            test_accuracy,
            training: header
                .get(key::TRAINING)
                .map(|v| parse_json(key::TRAINING, v))
                .transpose()?,
            optimizer: header
                .get(key::OPTIMIZER)
                .map(|v| parse_json(key::OPTIMIZER, v))
                .transpose()?,
            written_by: header.get(key::WRITTEN_BY).cloned().unwrap_or_default(),
        }))
    }
}

/// Our own metadata types always serialize (plain structs and enums, no maps with non-string
/// keys), so this cannot fail in practice.
fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// A checkpoint read into host memory.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub path: PathBuf,
    /// `None` for files without our metadata (for example written by PyTorch).
    pub meta: Option<CheckpointMeta>,
    /// Every tensor in the file, by name, on the CPU.
    pub tensors: BTreeMap<String, Tensor>,
}

impl Checkpoint {
    /// Reads and checks a safetensors file: size, header, offsets (the safetensors crate rejects
    /// headers that point outside the file) and our metadata.
    pub fn read(path: &Path) -> Result<Self> {
        let io = |action, error| ModelError::Io {
            path: path.to_path_buf(),
            action,
            error,
        };
        let not_st = |reason: String| ModelError::NotSafetensors {
            path: path.to_path_buf(),
            reason,
        };
        let info = std::fs::metadata(path).map_err(|e| io("read checkpoint", e))?;
        if info.is_dir() {
            return Err(not_st("it is a directory".into()));
        }
        if info.len() > MAX_CHECKPOINT_BYTES {
            return Err(not_st(format!(
                "{} bytes is far larger than any checkpoint of these models",
                info.len()
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| io("read checkpoint", e))?;
        Self::from_bytes(&bytes, path)
    }

    /// Reads and checks a safetensors file held in memory (a checkpoint built into the binary);
    /// `path` names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let not_st = |reason: String| ModelError::NotSafetensors {
            path: path.to_path_buf(),
            reason,
        };
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| not_st(e.to_string()))?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| not_st(e.to_string()))?;
        let meta = CheckpointMeta::from_header(
            header.metadata().as_ref().unwrap_or(&HashMap::new()),
            path,
        )?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let tensor = candle_core::safetensors::Load::load(&view, &Device::Cpu)
                .map_err(|e| not_st(format!("tensor {name:?}: {e}")))?;
            tensors.insert(name, tensor);
        }
        Ok(Self {
            path: path.to_path_buf(),
            meta,
            tensors,
        })
    }

    /// Tensors under `optim.`, with the prefix removed.
    pub fn optimizer_state(&self) -> BTreeMap<String, Tensor> {
        self.tensors
            .iter()
            .filter_map(|(n, t)| {
                n.strip_prefix(OPTIMIZER_PREFIX)
                    .map(|n| (n.to_string(), t.clone()))
            })
            .collect()
    }

    /// Builds the network this checkpoint describes on `device` and loads its weights.
    /// `architecture` is needed only for files without our metadata.
    pub fn to_network(
        &self,
        architecture: Option<Architecture>,
        device: &Device,
    ) -> Result<Network> {
        let architecture = match (&self.meta, architecture) {
            (Some(meta), Some(arch)) if arch.layers_text() != meta.architecture.layers_text() => {
                return Err(ModelError::BadMetadata {
                    path: self.path.clone(),
                    problem: format!(
                        "holds a {} model ({}, its metadata says so), not {arch} ({}); leave out \
                         --model and --layers",
                        meta.architecture,
                        meta.architecture.layers_text(),
                        arch.layers_text()
                    ),
                })
            }
            (Some(meta), _) => meta.architecture.clone(),
            (None, Some(arch)) => arch,
            (None, None) => {
                return Err(ModelError::BadMetadata {
                    path: self.path.clone(),
                    problem: "has no mnist metadata, so its architecture is unknown; pass --model \
                              or --layers to say which it is"
                        .into(),
                })
            }
        };
        let network = Network::uninitialized(architecture, device)?;
        self.load_into(&network)?;
        Ok(network)
    }

    /// Copies this checkpoint's weights into `network`, checking that every variable is present
    /// with the right shape, that nothing unknown is left over, and that every value is finite.
    pub fn load_into(&self, network: &Network) -> Result<()> {
        let arch = network.architecture.name().to_string();
        let mismatch = |name: &str, problem: String| ModelError::TensorMismatch {
            path: self.path.clone(),
            name: name.to_string(),
            problem,
            architecture: arch.clone(),
        };
        let vars = network.named_vars();
        for (name, var) in &vars {
            let tensor = self
                .tensors
                .get(name)
                .ok_or_else(|| mismatch(name, "is missing".into()))?;
            if tensor.dims() != var.dims() {
                return Err(mismatch(
                    name,
                    format!(
                        "has shape {:?} but {arch} needs {:?}",
                        tensor.dims(),
                        var.dims()
                    ),
                ));
            }
            if !tensor.dtype().is_float() {
                return Err(mismatch(
                    name,
                    format!("has dtype {:?}, expected a float type", tensor.dtype()),
                ));
            }
            let tensor = tensor.to_dtype(DType::F32)?;
            let bad = count_non_finite(&tensor)?;
            if bad > 0 {
                return Err(ModelError::NonFinite {
                    path: self.path.clone(),
                    name: name.clone(),
                    bad,
                });
            }
            var.set(&tensor.to_device(var.device())?)?;
        }
        let known: std::collections::HashSet<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
        if let Some(extra) = self.tensors.keys().find(|n| {
            !known.contains(n.as_str())
                && !n.starts_with(OPTIMIZER_PREFIX)
                && !n.ends_with(".num_batches_tracked")
        }) {
            return Err(mismatch(
                extra,
                format!("is not part of the {arch} architecture"),
            ));
        }
        Ok(())
    }
}

fn count_non_finite(t: &Tensor) -> Result<usize> {
    let values = t.flatten_all()?.to_vec1::<f32>()?;
    Ok(values.iter().filter(|v| !v.is_finite()).count())
}

/// Writes `network`'s weights, `optimizer_state` (names without the `optim.` prefix) and
/// `meta` to `path` atomically.
pub fn save(
    path: &Path,
    network: &Network,
    optimizer_state: &[(String, Tensor)],
    meta: &CheckpointMeta,
    batches_tracked: i64,
) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (name, var) in network.named_vars() {
        // A diverged run must never replace a good checkpoint with weights nothing can load.
        let bad = count_non_finite(&var.as_tensor().to_dtype(DType::F32)?)?;
        if bad > 0 {
            return Err(ModelError::NonFiniteWeights {
                path: path.to_path_buf(),
                name,
                bad,
            });
        }
        if let Some(layer) = name.strip_suffix(".running_mean") {
            // PyTorch's BatchNorm state_dict has this counter; strict loading requires it.
            let count = Tensor::new(batches_tracked, &Device::Cpu)?;
            tensors.push((format!("{layer}.num_batches_tracked"), count));
        }
        tensors.push((name, var.as_tensor().to_device(&Device::Cpu)?));
    }
    for (name, tensor) in optimizer_state {
        tensors.push((
            format!("{OPTIMIZER_PREFIX}{name}"),
            tensor.to_device(&Device::Cpu)?,
        ));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let bytes = safetensors::serialize(
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
        Some(meta.to_header()),
    )
    .map_err(|e| candle_core::Error::Msg(format!("serializing checkpoint: {e}")))?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` atomically (see [`mnist_data::fs::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    mnist_data::fs::write_atomic(path, bytes).map_err(|error| ModelError::Io {
        path: path.to_path_buf(),
        action: "write checkpoint",
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_values(network: &Network) -> Vec<(String, Vec<u32>)> {
        network
            .named_vars()
            .into_iter()
            .map(|(n, v)| {
                (
                    n,
                    v.flatten_all()
                        .unwrap()
                        .to_vec1::<f32>()
                        .unwrap()
                        .iter()
                        .map(|x| x.to_bits())
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn round_trip_is_bit_exact_with_metadata_and_optimizer_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let arch: Architecture = "convnet".parse().unwrap();
        let network = Network::seeded(arch.clone(), 3, &Device::Cpu).unwrap();
        let mut meta = CheckpointMeta::new(arch, Normalization::mnist_mean_std());
        meta.epoch = 2;
        meta.test_accuracy = Some(0.9912);
        meta.training = Some(serde_json::json!({"epochs": 4}));
        meta.optimizer = Some(serde_json::json!({"kind": "adam", "step": 10}));
        let state = vec![(
            "exp_avg.fc2.bias".to_string(),
            Tensor::new(&[1f32; 10], &Device::Cpu).unwrap(),
        )];
        save(&path, &network, &state, &meta, 10).unwrap();

        let checkpoint = Checkpoint::read(&path).unwrap();
        assert_eq!(checkpoint.meta.as_ref(), Some(&meta));
        let restored = checkpoint.to_network(None, &Device::Cpu).unwrap();
        assert_eq!(all_values(&restored), all_values(&network));
        let opt = checkpoint.optimizer_state();
        assert_eq!(opt.keys().collect::<Vec<_>>(), ["exp_avg.fc2.bias"]);
        // PyTorch's BatchNorm counter is there, as an i64 scalar.
        let tracked = &checkpoint.tensors["bn1.num_batches_tracked"];
        assert_eq!(
            (tracked.dtype(), tracked.to_scalar::<i64>().unwrap()),
            (DType::I64, 10)
        );
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn non_finite_weights_are_never_written_over_a_good_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let arch: Architecture = "tutorial".parse().unwrap();
        let network = Network::seeded(arch.clone(), 3, &Device::Cpu).unwrap();
        let meta = CheckpointMeta::new(arch, Normalization::Unit);
        save(&path, &network, &[], &meta, 0).unwrap();
        let good = std::fs::read(&path).unwrap();
        let (_, bias) = network
            .named_vars()
            .into_iter()
            .find(|(n, _)| n == "fc2.bias")
            .unwrap();
        bias.set(&Tensor::new(&[f32::NAN; 10], &Device::Cpu).unwrap())
            .unwrap();
        let err = save(&path, &network, &[], &meta, 0).unwrap_err();
        assert!(
            matches!(err, ModelError::NonFiniteWeights { bad: 10, .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("\"fc2.bias\" holds 10 NaN"),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), good);
    }

    #[test]
    fn header_keys_are_what_other_tools_read() {
        let meta = CheckpointMeta::new("tutorial".parse().unwrap(), Normalization::Unit);
        let h = meta.to_header();
        assert_eq!(h["format"], "pt");
        assert_eq!(h["mnist.architecture"], "tutorial");
        assert_eq!(h["mnist.format_version"], "2");
        assert_eq!(
            h["mnist.model_config"],
            r#"{"name":"tutorial","layers":["conv32x3","relu","pool2","flatten","dense128","relu","dense10"]}"#
        );
        assert_eq!(h["mnist.normalization"], r#"{"kind":"unit"}"#);
    }

    #[test]
    fn another_architecture_is_refused_naming_the_first_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tutorial.safetensors");
        let tutorial = Network::seeded("tutorial".parse().unwrap(), 0, &Device::Cpu).unwrap();
        save(
            &path,
            &tutorial,
            &[],
            &CheckpointMeta::new(tutorial.architecture.clone(), Normalization::Unit),
            0,
        )
        .unwrap();
        let convnet = Network::seeded("convnet".parse().unwrap(), 0, &Device::Cpu).unwrap();
        let err = Checkpoint::read(&path)
            .unwrap()
            .load_into(&convnet)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tutorial.safetensors")
                && err.contains("\"bn1.bias\" is missing")
                && err.contains("convnet"),
            "{err}"
        );
    }

    #[test]
    fn wrong_shape_and_non_finite_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let net = Network::seeded("tutorial".parse().unwrap(), 0, &Device::Cpu).unwrap();
        let mut tensors: BTreeMap<String, Tensor> = net
            .named_vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect();
        tensors.insert(
            "fc2.bias".into(),
            Tensor::zeros(11, DType::F32, &Device::Cpu).unwrap(),
        );
        candle_core::safetensors::save(&tensors.clone().into_iter().collect(), &path).unwrap();
        let err = Checkpoint::read(&path)
            .unwrap()
            .load_into(&net)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"fc2.bias\" has shape [11] but tutorial needs [10]"),
            "{err}"
        );

        tensors.insert(
            "fc2.bias".into(),
            Tensor::new(&[f32::NAN; 10], &Device::Cpu).unwrap(),
        );
        candle_core::safetensors::save(&tensors.into_iter().collect(), &path).unwrap();
        let checkpoint = Checkpoint::read(&path).unwrap();
        assert!(checkpoint.meta.is_none());
        let err = checkpoint.load_into(&net).unwrap_err().to_string();
        assert!(
            err.contains("\"fc2.bias\" holds 10 NaN or infinite values"),
            "{err}"
        );
        let err = checkpoint
            .to_network(None, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no mnist metadata") && err.contains("--model"),
            "{err}"
        );
    }

    #[test]
    fn garbage_truncated_and_directory_inputs_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.safetensors");
        std::fs::write(&garbage, b"this is not a checkpoint").unwrap();
        let err = Checkpoint::read(&garbage).unwrap_err().to_string();
        assert!(
            err.contains("garbage.safetensors: not a safetensors file"),
            "{err}"
        );

        let good = dir.path().join("good.safetensors");
        let net = Network::seeded("tutorial".parse().unwrap(), 0, &Device::Cpu).unwrap();
        save(
            &good,
            &net,
            &[],
            &CheckpointMeta::new(net.architecture.clone(), Normalization::Unit),
            0,
        )
        .unwrap();
        let bytes = std::fs::read(&good).unwrap();
        let cut = dir.path().join("cut.safetensors");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(
            Checkpoint::read(&cut),
            Err(ModelError::NotSafetensors { .. })
        ));

        let err = Checkpoint::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("directory"), "{err}");
        let err = Checkpoint::read(&dir.path().join("missing.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("missing.safetensors: cannot read checkpoint"),
            "{err}"
        );
    }
}
