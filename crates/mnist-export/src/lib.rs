//! Trained networks in other tools' formats. ONNX today: a self-contained model (opset 13,
//! dynamic batch) built from the network's layer list, whose input is raw pixels scaled to 0-1,
//! with the checkpoint's normalization built into the graph and its metadata in
//! `metadata_props`, so a consumer needs nothing from this project to get the same answers.
//!
//! The graph uses only the most widely implemented operators (Sub, Div, Conv, Relu, MaxPool,
//! Flatten, Gemm). Batch-norm layers are folded into the convolution or dense layer before them,
//! exactly as at inference: W' = W·γ/√(σ²+ε), b' = (b − μ)·γ/√(σ²+ε) + β, computed in f64.
//! The protobuf encoding is prost's, over ONNX's own schema (`proto/onnx.proto`).

use std::collections::BTreeMap;

use candle_core::Tensor;
use mnist_data::{Normalization, IMAGE_SIDE, NUM_CLASSES};
use mnist_model::{CheckpointMeta, Layer, Network, BATCH_NORM_EPS};
use prost::Message;

/// ONNX's protobuf types, generated at build time from `proto/onnx.proto`.
#[allow(clippy::all)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

use proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto::dimension,
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

/// The operator set the graph is written against.
pub const OPSET: i64 = 13;
/// ONNX IR version 8 (ONNX 1.10), which every runtime supporting opset 13 reads.
pub const IR_VERSION: i64 = 8;
/// The graph's input: float32 `[batch, 1, 28, 28]`.
pub const INPUT_NAME: &str = "pixels";
/// The graph's output: float32 `[batch, 10]`.
pub const OUTPUT_NAME: &str = "logits";
pub const INPUT_DOC: &str = "float32 [batch, 1, 28, 28]: MNIST-layout digits, row-major, pixel values scaled to 0-1 (0 = background, 1 = full ink; divide 8-bit pixels by 255). The model's own normalization is applied inside the graph.";
pub const OUTPUT_DOC: &str = "float32 [batch, 10]: unnormalized scores for the digits 0-9; softmax gives probabilities, argmax the digit.";

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("tensor {0:?} is missing from the network")]
    Missing(String),
}

/// The ONNX model of `network` (with `meta` as its metadata) as protobuf bytes.
pub fn onnx_bytes(network: &Network, meta: &CheckpointMeta) -> Result<Vec<u8>, ExportError> {
    Ok(onnx_model(network, meta)?.encode_to_vec())
}

/// Decodes an ONNX file's bytes (for checks of what [`onnx_bytes`] wrote).
pub fn decode(bytes: &[u8]) -> Result<ModelProto, prost::DecodeError> {
    ModelProto::decode(bytes)
}

/// The ONNX model of `network`, as a protobuf message.
pub fn onnx_model(network: &Network, meta: &CheckpointMeta) -> Result<ModelProto, ExportError> {
    let weights: BTreeMap<String, Tensor> = network
        .named_vars()
        .into_iter()
        .map(|(name, var)| (name, var.as_tensor().clone()))
        .collect();
    let mut graph = Graph::new(weights);
    let mut x = graph.normalize(INPUT_NAME, &meta.normalization);
    let placed = network.architecture.placed();
    for (i, p) in placed.iter().enumerate() {
        // A batch norm directly after a conv or dense layer (the only place a list may put
        // one) is folded into it.
        let bn = placed
            .get(i + 1)
            .filter(|next| next.layer == Layer::BatchNorm)
            .and_then(|next| next.name.as_deref());
        let name = || p.name.clone().unwrap_or_default();
        x = match p.layer {
            Layer::Conv { .. } => graph.conv(&x, &name(), bn)?,
            Layer::Dense { .. } => graph.dense(&x, &name(), bn)?,
            Layer::BatchNorm => continue,
            Layer::Relu => graph.unary("Relu", &x),
            Layer::MaxPool2 => graph.max_pool(&x),
            Layer::Flatten => graph.unary("Flatten", &x),
        };
    }
    graph.rename_last_output(&x, OUTPUT_NAME);
    let batch = || dimension::Value::DimParam("batch".into());
    let side = IMAGE_SIDE as i64;
    let mut metadata: Vec<StringStringEntryProto> = meta
        .to_header()
        .into_iter()
        .filter(|(k, _)| k != "format")
        .map(|(key, value)| StringStringEntryProto {
            key: Some(key),
            value: Some(value),
        })
        .collect();
    metadata.extend(
        [("mnist.input", INPUT_DOC), ("mnist.output", OUTPUT_DOC)].map(|(key, value)| {
            StringStringEntryProto {
                key: Some(key.into()),
                value: Some(value.into()),
            }
        }),
    );
    metadata.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        producer_name: Some("mnist".into()),
        producer_version: Some(meta.written_by.clone()),
        doc_string: Some(format!(
            "{} handwritten-digit classifier trained on MNIST. Input {INPUT_NAME}: {INPUT_DOC} Output {OUTPUT_NAME}: {OUTPUT_DOC}",
            network.architecture
        )),
        graph: Some(GraphProto {
            name: Some(format!("mnist_{}", network.architecture)),
            node: graph.nodes,
            initializer: graph.initializers,
            input: vec![value_info(
                INPUT_NAME,
                INPUT_DOC,
                [batch(), dimension::Value::DimValue(1), dimension::Value::DimValue(side), dimension::Value::DimValue(side)],
            )],
            output: vec![value_info(
                OUTPUT_NAME,
                OUTPUT_DOC,
                [batch(), dimension::Value::DimValue(NUM_CLASSES as i64)],
            )],
            ..Default::default()
        }),
        metadata_props: metadata,
        ..Default::default()
    })
}

/// A layer's weight shape, weight values and bias values (zeros where it has no bias).
type FoldedLayer = (Vec<usize>, Vec<f64>, Vec<f64>);

/// A graph under construction: nodes in order, their weights, and the network's tensors.
struct Graph {
    weights: BTreeMap<String, Tensor>,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl Graph {
    fn new(weights: BTreeMap<String, Tensor>) -> Self {
        Self {
            weights,
            nodes: Vec::new(),
            initializers: Vec::new(),
        }
    }

    fn weight(&self, name: &str) -> Result<(Vec<usize>, Vec<f64>), ExportError> {
        let t = self
            .weights
            .get(name)
            .ok_or_else(|| ExportError::Missing(name.into()))?;
        let values = t
            .flatten_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_vec1::<f64>()?;
        Ok((t.dims().to_vec(), values))
    }

    fn initializer(&mut self, name: &str, dims: &[usize], values: &[f64]) -> String {
        let raw: Vec<u8> = values
            .iter()
            .flat_map(|&v| (v as f32).to_le_bytes())
            .collect();
        self.initializers.push(TensorProto {
            name: Some(name.into()),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(DataType::Float as i32),
            raw_data: Some(raw),
            ..Default::default()
        });
        name.into()
    }

    /// Adds a node and returns its output's name (named after the node).
    fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        attributes: Vec<AttributeProto>,
    ) -> String {
        let output = format!("{name}.out");
        self.nodes.push(NodeProto {
            name: Some(name.into()),
            op_type: Some(op.into()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            attribute: attributes,
            ..Default::default()
        });
        output
    }

    fn unary(&mut self, op: &str, x: &str) -> String {
        let name = format!("{}{}", op.to_lowercase(), self.nodes.len());
        let attributes = if op == "Flatten" {
            vec![int_attr("axis", 1)]
        } else {
            vec![]
        };
        self.node(op, &name, &[x], attributes)
    }

    /// `(x - mean) / std` for mean/std normalization; the identity for `Unit`, whose x/255 the
    /// consumer has already done by feeding 0-1 pixels.
    fn normalize(&mut self, x: &str, normalization: &Normalization) -> String {
        match *normalization {
            Normalization::Unit => x.to_string(),
            Normalization::MeanStd { mean, std } => {
                let m = self.initializer("normalization.mean", &[], &[mean as f64]);
                let s = self.initializer("normalization.std", &[], &[std as f64]);
                let centred = self.node("Sub", "normalize.sub", &[x, &m], vec![]);
                self.node("Div", "normalize.div", &[&centred, &s], vec![])
            }
        }
    }

    /// Batch-norm `bn` as a per-channel (scale, shift) pair.
    fn bn_affine(&self, bn: &str) -> Result<(Vec<f64>, Vec<f64>), ExportError> {
        let (_, gamma) = self.weight(&format!("{bn}.weight"))?;
        let (_, beta) = self.weight(&format!("{bn}.bias"))?;
        let (_, mean) = self.weight(&format!("{bn}.running_mean"))?;
        let (_, var) = self.weight(&format!("{bn}.running_var"))?;
        let scale: Vec<f64> = gamma
            .iter()
            .zip(&var)
            .map(|(g, v)| g / (v + BATCH_NORM_EPS).sqrt())
            .collect();
        let shift = beta
            .iter()
            .zip(&mean)
            .zip(&scale)
            .map(|((b, m), s)| b - m * s)
            .collect();
        Ok((scale, shift))
    }

    /// Weight and bias of layer `layer` (its bias, if any, zero otherwise), with batch norm `bn`
    /// folded in: every output channel's row scaled, its bias scaled and shifted.
    fn folded(&self, layer: &str, bn: Option<&str>) -> Result<FoldedLayer, ExportError> {
        let (dims, mut w) = self.weight(&format!("{layer}.weight"))?;
        let outputs = dims[0];
        let mut b = match self.weights.contains_key(&format!("{layer}.bias")) {
            true => self.weight(&format!("{layer}.bias"))?.1,
            false => vec![0.0; outputs],
        };
        if let Some(bn) = bn {
            let (scale, shift) = self.bn_affine(bn)?;
            let per_output = w.len() / outputs;
            for (o, row) in w.chunks_mut(per_output).enumerate() {
                row.iter_mut().for_each(|v| *v *= scale[o]);
                b[o] = b[o] * scale[o] + shift[o];
            }
        }
        Ok((dims, w, b))
    }

    fn conv(&mut self, x: &str, layer: &str, bn: Option<&str>) -> Result<String, ExportError> {
        let (dims, w, b) = self.folded(layer, bn)?;
        let prefix = bn.map_or(layer.to_string(), |bn| format!("{layer}+{bn}"));
        let w = self.initializer(&format!("{prefix}.weight"), &dims, &w);
        let b = self.initializer(&format!("{prefix}.bias"), &[dims[0]], &b);
        let kernel = dims[2] as i64;
        Ok(self.node(
            "Conv",
            &prefix,
            &[x, &w, &b],
            vec![
                ints_attr("kernel_shape", &[kernel, kernel]),
                ints_attr("strides", &[1, 1]),
            ],
        ))
    }

    fn max_pool(&mut self, x: &str) -> String {
        let name = format!("maxpool{}", self.nodes.len());
        self.node(
            "MaxPool",
            &name,
            &[x],
            vec![
                ints_attr("kernel_shape", &[2, 2]),
                ints_attr("strides", &[2, 2]),
            ],
        )
    }

    /// `x · Wᵀ + b` with PyTorch's `[out, in]` weight, as Gemm with transB.
    fn dense(&mut self, x: &str, layer: &str, bn: Option<&str>) -> Result<String, ExportError> {
        let (dims, w, b) = self.folded(layer, bn)?;
        let prefix = bn.map_or(layer.to_string(), |bn| format!("{layer}+{bn}"));
        let w = self.initializer(&format!("{prefix}.weight"), &dims, &w);
        let b = self.initializer(&format!("{prefix}.bias"), &[dims[0]], &b);
        Ok(self.node("Gemm", &prefix, &[x, &w, &b], vec![int_attr("transB", 1)]))
    }

    fn rename_last_output(&mut self, current: &str, name: &str) {
        if let Some(last) = self.nodes.last_mut() {
            if last.output.first().map(String::as_str) == Some(current) {
                last.output = vec![name.into()];
            }
        }
    }
}

fn int_attr(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(value),
        ..Default::default()
    }
}

fn ints_attr(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: values.to_vec(),
        ..Default::default()
    }
}

fn value_info<const N: usize>(
    name: &str,
    doc: &str,
    dims: [dimension::Value; N],
) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        doc_string: Some(doc.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .into_iter()
                        .map(|v| proto::tensor_shape_proto::Dimension {
                            value: Some(v),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, ModuleT};
    use std::collections::HashMap;

    /// Runs a decoded graph with candle's reference ops: enough of ONNX for what we export.
    fn interpret(model: &ModelProto, input: &Tensor) -> Tensor {
        let graph = model.graph.as_ref().unwrap();
        let mut values: HashMap<String, Tensor> = HashMap::new();
        for init in &graph.initializer {
            let floats: Vec<f32> = init
                .raw_data()
                .chunks(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            let dims: Vec<usize> = init.dims.iter().map(|&d| d as usize).collect();
            let t = Tensor::from_vec(floats, dims, &Device::Cpu).unwrap();
            values.insert(init.name().into(), t);
        }
        values.insert(INPUT_NAME.into(), input.clone());
        for node in &graph.node {
            let arg = |i: usize| values[&node.input[i]].clone();
            let out = match node.op_type() {
                "Sub" => arg(0).broadcast_sub(&arg(1)),
                "Div" => arg(0).broadcast_div(&arg(1)),
                "Relu" => arg(0).relu(),
                "Flatten" => arg(0).flatten_from(1),
                "MaxPool" => arg(0).max_pool2d(2),
                "Conv" => arg(0)
                    .conv2d(&arg(1), 0, 1, 1, 1)
                    .and_then(|y| y.broadcast_add(&arg(2).reshape((1, (), 1, 1))?)),
                "Gemm" => arg(0)
                    .matmul(&arg(1).t().unwrap())
                    .and_then(|y| y.broadcast_add(&arg(2))),
                op => panic!("unexpected op {op}"),
            }
            .unwrap();
            values.insert(node.output[0].clone(), out);
        }
        values[OUTPUT_NAME].clone()
    }

    /// A network of `architecture` with seeded weights and, for batch norm, running statistics
    /// far from the identity so that folding them in is really tested.
    fn network(architecture: mnist_model::Architecture) -> Network {
        let network = Network::seeded(architecture, 5, &Device::Cpu).unwrap();
        for (i, (name, var)) in network.named_vars().into_iter().enumerate() {
            let n = var.elem_count();
            let pattern = |lo: f32, hi: f32| -> Vec<f32> {
                (0..n)
                    .map(|k| lo + (hi - lo) * (((k * 37 + i * 11) % 97) as f32 / 96.0))
                    .collect()
            };
            let values = if name.ends_with("running_mean")
                || name.ends_with(".bias") && name.starts_with("bn")
            {
                pattern(-0.5, 0.5)
            } else if name.ends_with("running_var") || name.starts_with("bn") {
                pattern(0.5, 2.0)
            } else {
                continue;
            };
            var.set(&Tensor::from_vec(values, var.dims(), &Device::Cpu).unwrap())
                .unwrap();
        }
        network
    }

    fn images(n: usize) -> Tensor {
        let pixels: Vec<u8> = (0..n * 784).map(|i| ((i * 7919) % 256) as u8).collect();
        Tensor::from_vec(pixels, (n, 1, 28, 28), &Device::Cpu).unwrap()
    }

    #[test]
    fn the_exported_graph_computes_the_networks_logits() {
        let lists = mnist_model::BUILT_IN
            .map(|(_, list)| list)
            .into_iter()
            .chain([
                "conv6x4,bn,relu,pool2,conv5x3,relu,conv7x2,pool2,flatten,dense13,bn,relu,dense10",
            ]);
        for list in lists {
            let architecture = mnist_model::Architecture::from_text(list).unwrap();
            let normalization = architecture.default_normalization();
            let network = network(architecture.clone());
            let meta = CheckpointMeta::new(architecture.clone(), normalization);
            let model = ModelProto::decode(&onnx_bytes(&network, &meta).unwrap()[..]).unwrap();
            let pixels = images(5);
            let ours = network
                .frozen()
                .unwrap()
                .forward_t(&normalization.apply(&pixels).unwrap(), false)
                .unwrap();
            let unit = (pixels.to_dtype(DType::F32).unwrap() / 255.0).unwrap();
            let theirs = interpret(&model, &unit);
            let diff = (ours - theirs).unwrap().abs().unwrap().max_all().unwrap();
            let diff = diff.to_scalar::<f32>().unwrap();
            assert!(diff < 1e-4, "{architecture}: max difference {diff}");
        }
    }

    #[test]
    fn the_model_describes_itself() {
        let architecture: mnist_model::Architecture = "convnet".parse().unwrap();
        let mut meta = CheckpointMeta::new(architecture.clone(), Normalization::mnist_mean_std());
        meta.test_accuracy = Some(0.9967);
        let model = onnx_model(&network(architecture), &meta).unwrap();
        assert_eq!(model.opset_import[0].version(), OPSET);
        let props: HashMap<&str, &str> = model
            .metadata_props
            .iter()
            .map(|p| (p.key(), p.value()))
            .collect();
        assert_eq!(props["mnist.architecture"], "convnet");
        assert_eq!(props["mnist.test_accuracy"], "0.9967");
        assert_eq!(props["mnist.version"], env!("CARGO_PKG_VERSION"));
        assert!(props["mnist.normalization"].contains("0.1307"));
        assert_eq!(props["mnist.input"], INPUT_DOC);
        let graph = model.graph.unwrap();
        let Some(type_proto::Value::TensorType(input)) =
            &graph.input[0].r#type.as_ref().unwrap().value
        else {
            panic!("input is not a tensor")
        };
        let dims = &input.shape.as_ref().unwrap().dim;
        assert_eq!(
            dims[0].value,
            Some(dimension::Value::DimParam("batch".into()))
        );
        assert_eq!(graph.output[0].name(), OUTPUT_NAME);
        let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type()).collect();
        assert_eq!(ops.iter().filter(|&&op| op == "Conv").count(), 4);
        assert!(
            !ops.contains(&"BatchNormalization"),
            "batch norm is folded: {ops:?}"
        );
    }
}
