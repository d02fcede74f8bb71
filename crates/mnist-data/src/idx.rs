//! Parsing of the IDX files MNIST ships in, gzipped or not.
//!
//! IDX: a big-endian `u32` magic `0x0000_08NN` (`08` = unsigned bytes, `NN` =
//! number of dimensions), one big-endian `u32` per dimension, then the data,
//! row-major. MNIST images are `0x803` (count, 28, 28), labels `0x801` (count).
//!
//! The header is untrusted: nothing is allocated for the data until the
//! length it announces has been checked against what the content can hold,
//! and decompression stops at that length, so a corrupt header or a gzip bomb
//! costs neither gigabytes of memory nor minutes of inflating. Whether a file
//! is gzipped is read from its first two bytes, not from its name: people
//! gunzip files and keep the name, or the other way round.
//!
//! This module does not know file names or directories; see [`crate::dataset`].

use std::fmt;
use std::io::Read;
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::error::DataError;
use crate::{IMAGE_PIXELS, IMAGE_SIDE, NUM_CLASSES};

/// The first two bytes of every gzip stream.
pub(crate) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Deflate cannot expand its input more than about 1032 times, so a gzip
/// stream of `n` bytes holds at most `n * MAX_DEFLATE_RATIO` bytes. Used only
/// to bound how much memory to reserve before the data has arrived.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// Which of the two MNIST IDX layouts a file should have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdxKind {
    Images,
    Labels,
}

impl IdxKind {
    /// The magic number: `08` (unsigned bytes) then the number of dimensions.
    fn magic(self) -> u32 {
        0x0800 | u32::from(self.rank())
    }

    fn rank(self) -> u8 {
        match self {
            IdxKind::Images => 3,
            IdxKind::Labels => 1,
        }
    }

    /// Magic plus one `u32` per dimension.
    fn header_len(self) -> usize {
        4 + 4 * usize::from(self.rank())
    }

    /// Bytes per example.
    fn item_len(self) -> usize {
        match self {
            IdxKind::Images => IMAGE_PIXELS,
            IdxKind::Labels => 1,
        }
    }
}

impl fmt::Display for IdxKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdxKind::Images => "images",
            IdxKind::Labels => "labels",
        })
    }
}

/// The content of an MNIST image file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Images {
    /// Number of images.
    pub count: usize,
    /// `count * IMAGE_PIXELS` bytes, image after image, each row-major.
    pub pixels: Vec<u8>,
}

/// The content of an MNIST label file: one digit `0..NUM_CLASSES` per example.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Labels(pub Vec<u8>);

/// Reads and validates an image file, gzipped or not.
pub fn read_images(path: &Path) -> Result<Images, DataError> {
    parse_images(&read_file(path)?, path)
}

/// Reads and validates a label file, gzipped or not.
pub fn read_labels(path: &Path) -> Result<Labels, DataError> {
    parse_labels(&read_file(path)?, path)
}

/// Parses the bytes of an image file, gzipped or not; `path` only names the
/// file in error messages.
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<Images, DataError> {
    let pixels = parse(bytes, path, IdxKind::Images)?;
    Ok(Images {
        count: pixels.len() / IMAGE_PIXELS,
        pixels,
    })
}

/// Parses the bytes of a label file, gzipped or not, and checks that every
/// label is a digit; `path` only names the file in error messages.
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<Labels, DataError> {
    let labels = parse(bytes, path, IdxKind::Labels)?;
    if let Some((index, &value)) = labels
        .iter()
        .enumerate()
        .find(|(_, &label)| usize::from(label) >= NUM_CLASSES)
    {
        return Err(DataError::LabelOutOfRange {
            path: path.to_owned(),
            index,
            value,
        });
    }
    Ok(Labels(labels))
}

fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|error| DataError::Read {
        path: path.to_owned(),
        error,
    })
}

/// Returns the data after the header, checked against it.
fn parse(bytes: &[u8], path: &Path, kind: IdxKind) -> Result<Vec<u8>, DataError> {
    let input_len = bytes.len() as u64;
    if bytes.starts_with(&GZIP_MAGIC) {
        let capacity_bound = input_len.saturating_mul(MAX_DEFLATE_RATIO);
        read_idx(MultiGzDecoder::new(bytes), capacity_bound, path, kind)
    } else {
        read_idx(bytes, input_len, path, kind)
    }
}

/// Reads header and data from `reader`, never more than the header announces
/// plus one byte (to notice trailing data). `capacity_bound` is an upper
/// bound on how much the reader can yield, used to reserve memory.
///
/// The reader is a byte slice or a gzip decoder over one, so reading can
/// only fail because the gzip stream is damaged.
fn read_idx(
    mut reader: impl Read,
    capacity_bound: u64,
    path: &Path,
    kind: IdxKind,
) -> Result<Vec<u8>, DataError> {
    let corrupt = |error| DataError::CorruptGzip {
        path: path.to_owned(),
        error,
    };

    let header_len = kind.header_len();
    let mut header = Vec::with_capacity(header_len);
    (&mut reader)
        .take(header_len as u64)
        .read_to_end(&mut header)
        .map_err(corrupt)?;
    if header.len() < header_len {
        return Err(DataError::ShortHeader {
            path: path.to_owned(),
            kind,
            found: header.len(),
            expected: header_len,
        });
    }
    let word = |i: usize| {
        u32::from_be_bytes([
            header[4 * i],
            header[4 * i + 1],
            header[4 * i + 2],
            header[4 * i + 3],
        ])
    };

    let magic = word(0);
    if magic >> 8 != kind.magic() >> 8 {
        return Err(DataError::BadMagic {
            path: path.to_owned(),
            kind,
            found: magic,
            expected: kind.magic(),
        });
    }
    let rank = header[3];
    if rank != kind.rank() {
        return Err(DataError::WrongRank {
            path: path.to_owned(),
            kind,
            found: rank,
            expected: kind.rank(),
        });
    }
    if kind == IdxKind::Images {
        let (rows, cols) = (word(2), word(3));
        if [rows, cols] != [IMAGE_SIDE as u32; 2] {
            return Err(DataError::WrongImageSize {
                path: path.to_owned(),
                rows,
                cols,
            });
        }
    }

    let count = word(1);
    // A u32 count times at most 784 bytes stays below 2^42: no overflow in u64.
    let data_len = u64::from(count) * kind.item_len() as u64;
    // Reserve only what the content can actually hold: a header that claims
    // four billion images in a 100-byte file must not reserve 3 TB.
    let reserve = data_len.min(capacity_bound.saturating_sub(header_len as u64));
    let mut data = Vec::with_capacity(usize::try_from(reserve).unwrap_or(0));
    (&mut reader)
        .take(data_len)
        .read_to_end(&mut data)
        .map_err(corrupt)?;
    if (data.len() as u64) < data_len {
        return Err(DataError::Truncated {
            path: path.to_owned(),
            kind,
            count,
            expected: header_len as u64 + data_len,
            found: (header_len + data.len()) as u64,
        });
    }
    // One more byte tells whether anything follows; reaching the end is also
    // what makes the gzip decoder check the stream's CRC and length.
    let mut rest = Vec::with_capacity(1);
    reader.take(1).read_to_end(&mut rest).map_err(corrupt)?;
    if !rest.is_empty() {
        return Err(DataError::TrailingData {
            path: path.to_owned(),
            kind,
            count,
            expected: header_len as u64 + data_len,
        });
    }
    Ok(data)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::io::Write;

    /// Records the largest single allocation made by the current thread, so
    /// that tests can prove a lying header reserved nothing big.
    struct LargestAllocation;

    thread_local! {
        static LARGEST: Cell<usize> = const { Cell::new(0) };
    }

    fn note(size: usize) {
        // try_with: the slot may be gone while a thread shuts down.
        let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
    }

    // SAFETY: forwards every call unchanged to the system allocator.
    unsafe impl GlobalAlloc for LargestAllocation {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            System.alloc(layout)
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            System.dealloc(ptr, layout)
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note(new_size);
            System.realloc(ptr, layout, new_size)
        }
    }

    #[global_allocator]
    static ALLOCATOR: LargestAllocation = LargestAllocation;

    /// Runs `f` and returns its result with the largest allocation it made.
    fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
        LARGEST.with(|largest| largest.set(0));
        let result = f();
        (result, LARGEST.with(Cell::get))
    }

    /// An image file whose header says `count` images of `rows`x`cols`.
    pub(crate) fn image_file(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for word in [0x803, count, rows, cols] {
            bytes.extend(word.to_be_bytes());
        }
        bytes.extend(pixels);
        bytes
    }

    pub(crate) fn label_file(count: u32, labels: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for word in [0x801, count] {
            bytes.extend(word.to_be_bytes());
        }
        bytes.extend(labels);
        bytes
    }

    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// Two images: the first counts 0, 1, 2... (mod 256), the second is all ink.
    fn two_images() -> Vec<u8> {
        let mut pixels: Vec<u8> = (0..IMAGE_PIXELS).map(|i| (i % 256) as u8).collect();
        pixels.extend([255; IMAGE_PIXELS]);
        pixels
    }

    const SIDE: u32 = IMAGE_SIDE as u32;
    const IMAGES: &str = "dir/train-images-idx3-ubyte";
    const LABELS: &str = "dir/train-labels-idx1-ubyte";

    fn images(bytes: &[u8]) -> Result<Images, DataError> {
        parse_images(bytes, Path::new(IMAGES))
    }

    fn labels(bytes: &[u8]) -> Result<Labels, DataError> {
        parse_labels(bytes, Path::new(LABELS))
    }

    /// The message names the file and is one line.
    fn assert_message(err: &DataError, file: &str) {
        let message = err.to_string();
        assert!(message.starts_with(&format!("{file}: ")), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }

    #[test]
    fn valid_images_parse_to_their_pixels() {
        let pixels = two_images();
        let parsed = images(&image_file(2, SIDE, SIDE, &pixels)).unwrap();
        assert_eq!(parsed.count, 2);
        assert_eq!(parsed.pixels, pixels);
        assert_eq!(parsed.pixels[IMAGE_PIXELS - 1], (783 % 256) as u8);
    }

    #[test]
    fn valid_labels_parse_to_their_digits() {
        let parsed = labels(&label_file(4, &[7, 0, 9, 3])).unwrap();
        assert_eq!(parsed, Labels(vec![7, 0, 9, 3]));
        assert_eq!(labels(&label_file(0, &[])).unwrap(), Labels(vec![]));
    }

    #[test]
    fn gzip_and_raw_give_the_same_content() {
        let raw = image_file(2, SIDE, SIDE, &two_images());
        assert_eq!(images(&gzip(&raw)).unwrap(), images(&raw).unwrap());
        let raw = label_file(3, &[1, 2, 3]);
        assert_eq!(labels(&gzip(&raw)).unwrap(), labels(&raw).unwrap());
    }

    #[test]
    fn short_header_is_reported_as_such() {
        let err = images(&[0, 0, 8, 3, 0]).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::ShortHeader {
                    found: 5,
                    expected: 16,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_message(&err, IMAGES);
        let err = labels(&gzip(&[0, 0, 8])).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::ShortHeader {
                    found: 3,
                    expected: 8,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(matches!(
            labels(&[]),
            Err(DataError::ShortHeader { found: 0, .. })
        ));
    }

    #[test]
    fn wrong_magic_is_reported_with_both_values() {
        let mut bytes = label_file(1, &[1]);
        bytes[2] = 0x0d; // 0x0d0x: IDX int32, not u8
        let err = labels(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::BadMagic {
                    found: 0x0d01,
                    expected: 0x0801,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_message(&err, LABELS);
        assert!(err.to_string().contains("0x00000d01"), "{err}");
        // A PNG is not an IDX file either.
        let err = images(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap_err();
        assert!(
            matches!(
                err,
                DataError::BadMagic {
                    found: 0x8950_4e47,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn labels_given_as_images_are_a_wrong_rank() {
        let err = images(&label_file(1, &[1; 12])).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::WrongRank {
                    found: 1,
                    expected: 3,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_message(&err, IMAGES);
        let err = labels(&image_file(1, SIDE, SIDE, &[0; IMAGE_PIXELS])).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::WrongRank {
                    found: 3,
                    expected: 1,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn images_of_27x28_are_rejected() {
        let err = images(&image_file(1, 27, SIDE, &[0; 27 * 28])).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::WrongImageSize {
                    rows: 27,
                    cols: 28,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_message(&err, IMAGES);
        assert!(err.to_string().contains("27x28") && err.to_string().contains("28x28"));
    }

    #[test]
    fn truncated_data_is_reported_with_sizes() {
        let pixels = two_images();
        let bytes = image_file(2, SIDE, SIDE, &pixels[..IMAGE_PIXELS + 100]);
        let err = images(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Truncated {
                    count: 2,
                    expected: 1584,
                    found: 900,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_message(&err, IMAGES);
        let err = labels(&gzip(&label_file(3, &[1, 2]))).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Truncated {
                    expected: 11,
                    found: 10,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn trailing_data_is_reported() {
        let err = labels(&label_file(2, &[1, 2, 3])).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::TrailingData {
                    count: 2,
                    expected: 10,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_message(&err, LABELS);
        let err = images(&gzip(&image_file(1, SIDE, SIDE, &two_images()))).unwrap_err();
        assert!(
            matches!(err, DataError::TrailingData { count: 1, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn label_ten_is_reported_with_index_and_value() {
        let err = labels(&label_file(4, &[0, 9, 10, 3])).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::LabelOutOfRange {
                    index: 2,
                    value: 10,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_message(&err, LABELS);
        assert!(err.to_string().contains("label #2 is 10"), "{err}");
    }

    #[test]
    fn a_header_claiming_u32_max_images_allocates_nothing_big() {
        let mut bytes = image_file(u32::MAX, SIDE, SIDE, &[]);
        bytes.resize(100, 0);
        for input in [bytes.clone(), gzip(&bytes)] {
            let (result, largest) = largest_allocation(|| images(&input));
            let err = result.unwrap_err();
            assert!(
                matches!(
                    err,
                    DataError::Truncated {
                        count: u32::MAX,
                        found: 100,
                        ..
                    }
                ),
                "{err:?}"
            );
            assert!(largest < 1 << 20, "largest allocation {largest} bytes");
            assert_message(&err, IMAGES);
        }
    }

    #[test]
    fn a_gzip_bomb_is_not_inflated_past_the_header() {
        // A valid gzip stream: one announced label, then 64 MiB of zeros
        // that compress to about 64 KiB.
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(&label_file(1, &[5])).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            encoder.write_all(&zeros).unwrap();
        }
        let bomb = encoder.finish().unwrap();
        drop(zeros);
        let (result, largest) = largest_allocation(|| labels(&bomb));
        let err = result.unwrap_err();
        assert!(
            matches!(
                err,
                DataError::TrailingData {
                    count: 1,
                    expected: 9,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(largest < 1 << 20, "largest allocation {largest} bytes");
    }

    #[test]
    fn corrupt_gzip_is_reported_as_such() {
        let good = gzip(&label_file(3, &[1, 2, 3]));
        let len = good.len();

        let mut bad_crc = good.clone();
        bad_crc[len - 8] ^= 0xff; // the CRC-32 of the content
        let mut cut = good.clone();
        cut.truncate(len - 6); // ends inside the trailer
        let not_deflate = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff];

        for input in [&bad_crc[..], &cut, &not_deflate] {
            let err = labels(input).unwrap_err();
            assert!(matches!(err, DataError::CorruptGzip { .. }), "{err:?}");
            assert_message(&err, LABELS);
        }
    }
}
