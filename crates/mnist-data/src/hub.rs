//! Conversion to and from `candle_datasets::vision::Dataset` (feature `hub`),
//! so that a dataset from candle-datasets' loaders (the Hugging Face hub one
//! in particular) can be used wherever an [`Mnist`] is expected, and the
//! other way round.
//!
//! The layout is the one `candle_datasets::vision::mnist` produces: images
//! `(N, 784)` `f32` equal to pixel / 255, labels `(N,)` `u8`, on the CPU.

use candle_core::{DType, Device, Tensor};
use candle_datasets::vision::Dataset;

use crate::dataset::{Mnist, Split};
use crate::error::DataError;
use crate::{IMAGE_PIXELS, NUM_CLASSES};

impl Mnist {
    /// The dataset in candle-datasets' layout, on the CPU.
    pub fn to_candle_dataset(&self) -> candle_core::Result<Dataset> {
        let images = |split: &Split| {
            Tensor::from_slice(&split.images, (split.len(), IMAGE_PIXELS), &Device::Cpu)?
                .to_dtype(DType::F32)?
                / 255.0
        };
        let labels = |split: &Split| Tensor::from_slice(&split.labels, split.len(), &Device::Cpu);
        Ok(Dataset {
            train_images: images(&self.train)?,
            train_labels: labels(&self.train)?,
            test_images: images(&self.test)?,
            test_labels: labels(&self.test)?,
            labels: NUM_CLASSES,
        })
    }

    /// Takes a dataset in candle-datasets' layout back, checking shapes,
    /// pixel range and labels, so that a wrong dataset fails here rather
    /// than as a shape error deep inside training.
    pub fn from_candle_dataset(dataset: &Dataset) -> Result<Mnist, DataError> {
        if dataset.labels != NUM_CLASSES {
            return Err(DataError::BadTensor {
                tensor: "labels",
                found: format!("{} classes", dataset.labels),
                expected: format!("{NUM_CLASSES} classes"),
            });
        }
        Ok(Mnist {
            train: split(
                &dataset.train_images,
                &dataset.train_labels,
                ["train_images", "train_labels"],
            )?,
            test: split(
                &dataset.test_images,
                &dataset.test_labels,
                ["test_images", "test_labels"],
            )?,
        })
    }
}

fn split(
    images: &Tensor,
    labels: &Tensor,
    [images_name, labels_name]: [&'static str; 2],
) -> Result<Split, DataError> {
    let bad = |tensor, found: String, expected: &str| DataError::BadTensor {
        tensor,
        found,
        expected: expected.to_owned(),
    };

    let &[count] = labels.dims() else {
        return Err(bad(
            labels_name,
            format!("shape {:?}", labels.dims()),
            "shape (N,)",
        ));
    };
    if labels.dtype().is_float() {
        return Err(bad(
            labels_name,
            format!("dtype {:?}", labels.dtype()),
            "an integer dtype",
        ));
    }
    if images.dims() != [count, IMAGE_PIXELS] {
        let expected = format!("shape ({count}, {IMAGE_PIXELS}), one row per label");
        return Err(bad(
            images_name,
            format!("shape {:?}", images.dims()),
            &expected,
        ));
    }

    let labels = labels.to_dtype(DType::I64)?.to_vec1::<i64>()?;
    let labels = labels
        .iter()
        .enumerate()
        .map(|(index, &label)| {
            u8::try_from(label)
                .ok()
                .filter(|&digit| usize::from(digit) < NUM_CLASSES)
                .ok_or_else(|| {
                    bad(
                        labels_name,
                        format!("label #{index} = {label}"),
                        "digits 0-9",
                    )
                })
        })
        .collect::<Result<Vec<u8>, _>>()?;

    let values = images
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let images = values
        .iter()
        .enumerate()
        .map(|(index, &value)| match (0.0..=1.0).contains(&value) {
            // Exact for the k / 255 values candle's loader produces.
            true => Ok((value * 255.0).round() as u8),
            false => Err(bad(
                images_name,
                format!(
                    "value {value} at image {}, pixel {}",
                    index / IMAGE_PIXELS,
                    index % IMAGE_PIXELS
                ),
                "values in [0, 1] (pixel / 255)",
            )),
        })
        .collect::<Result<Vec<u8>, _>>()?;

    Ok(Split { images, labels })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_mnist() -> Mnist {
        let split = |count: usize| Split {
            images: (0..count * IMAGE_PIXELS).map(|i| (i % 256) as u8).collect(),
            labels: (0..count).map(|i| (i % NUM_CLASSES) as u8).collect(),
        };
        Mnist {
            train: split(12),
            test: split(3),
        }
    }

    #[test]
    fn round_trip_through_candle_dataset_is_exact() {
        let mnist = small_mnist();
        let dataset = mnist.to_candle_dataset().unwrap();
        assert_eq!(dataset.train_images.dims(), [12, IMAGE_PIXELS]);
        assert_eq!(dataset.train_images.dtype(), DType::F32);
        assert_eq!(dataset.test_labels.dtype(), DType::U8);
        let first_row = dataset
            .train_images
            .get(0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(first_row[255], 1.0);
        assert!((first_row[51] - 0.2).abs() < 1e-6);
        assert_eq!(Mnist::from_candle_dataset(&dataset).unwrap(), mnist);
    }

    #[test]
    fn wrong_shapes_labels_and_ranges_are_rejected() {
        let rejection = |change: fn(&mut Dataset)| {
            let mut dataset = small_mnist().to_candle_dataset().unwrap();
            change(&mut dataset);
            Mnist::from_candle_dataset(&dataset)
                .unwrap_err()
                .to_string()
        };
        let expect = |message: String, part: &str| assert!(message.contains(part), "{message}");

        expect(
            rejection(|d| d.test_images = d.test_images.narrow(0, 0, 2).unwrap()),
            "candle dataset test_images: shape [2, 784], expected shape (3, 784), one row per label",
        );
        expect(
            rejection(|d| d.train_labels = d.train_labels.reshape((3, 4)).unwrap()),
            "train_labels: shape [3, 4], expected shape (N,)",
        );
        expect(
            rejection(|d| d.train_labels = d.train_labels.to_dtype(DType::F32).unwrap()),
            "train_labels: dtype F32, expected an integer dtype",
        );
        expect(
            rejection(|d| {
                let mut labels = vec![0u8; 12];
                labels[4] = 10;
                d.train_labels = Tensor::new(labels.as_slice(), &Device::Cpu).unwrap();
            }),
            "train_labels: label #4 = 10, expected digits 0-9",
        );
        expect(
            rejection(|d| d.test_images = (&d.test_images * 255.0).unwrap()),
            "test_images: value 2 at image 0, pixel 2, expected values in [0, 1]",
        );
        expect(
            rejection(|d| d.labels = 47),
            "labels: 47 classes, expected 10 classes",
        );
    }
}
