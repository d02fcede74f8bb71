//! People's pictures of digits, turned into what an MNIST model expects.
//!
//! [`read_digit`] treats the whole picture as one digit; [`read_number`] finds the digits of a
//! number written left to right (a group wide enough to be touching digits comes both whole and
//! cut, for the caller's model to choose: [`Segment::choose`]). Both decode any PNG, JPEG, BMP,
//! GIF, WebP or TIFF of any size with bounded memory ([`decode`]), paint over the table around a
//! page photographed on one (`page`), find the ink whatever its colour and the paper's
//! ([`ink`]), remove the page's printed lines ([`lines`]), segment what is left ([`segment`])
//! and give each digit MNIST's own preprocessing ([`mnist_style`]). The result is 28x28 `u8`
//! pixels, 0 = paper, exactly like MNIST's files, so a model's input goes through the same
//! `Normalization` as in training. Nothing here touches a model or a device.
//!
//! [`synth`] makes user-style pictures out of MNIST digits, for tests and examples.

pub mod decode;
mod error;
pub mod ink;
pub mod lines;
pub mod mnist_style;
mod page;
mod perspective;
pub mod segment;
pub use mnist_data::stroke;
pub mod synth;

use std::path::Path;

use image::DynamicImage;

pub use decode::{decode_image, read_image};
pub use error::ImageError;
pub use ink::InkMap;
pub use mnist_style::{style, MnistPixels, Styled};
pub use segment::{BBox, Glyph, Segment};

/// Pictures are analysed at most this large (longer side): digits need no more, and it bounds
/// the work on a 40-megapixel photo. Larger pictures are shrunk by a whole factor (a 12-megapixel
/// photo, 4000 pixels wide, to 1334). Boxes are reported in the original picture's pixels.
pub const ANALYSIS_MAX_SIDE: u32 = 1600;

/// A picture out of focus ([`InkMap::out_of_focus`]) is looked at at half its size, where its
/// blur is half as wide, and so is one where no ink was found, where the paper's noise is
/// averaged down; unless that would leave fewer pixels than this on its longer side.
const HALF_SIZE_MIN_SIDE: u32 = 150;
/// Ink found only on a second look (at half size, or over the narrowest window) counts when its
/// strokes are at most this wide (pixels at the size looked at, [`InkMap::stroke_width`]), as a
/// pen line is: at half size the faint pen and pencil strokes of blurred photos are 2.2-2.9 px
/// wide, and what a blank page leaves after its shadows are taken out is patches 6.6-28 px wide
/// (the blank pages of `scripts/photo-accuracy.sh 0 0 100 5` and `0 0 100 31`); over the
/// narrowest window it tells a pen line from the wedges of false ink along a shadow's edge.
const SECOND_LOOK_MAX_STROKE: f32 = 4.5;

/// A picture where no other look found ink is looked at once more at half size with each pixel
/// averaged over the square this many pixels around it. A radius of 1 reads 5 of the 8 faint
/// out-of-focus numbers that the other looks refuse among docs/photos.md's sets; at 2, none: the
/// averaged strokes grow wider than a pen line's ([`SECOND_LOOK_MAX_STROKE`]) and fainter than
/// [`ink`]'s floor for them.
const SMOOTHING_RADIUS: usize = 1;
/// ... and only a picture at least this many pixels on its shorter side is looked at so: in a
/// thumbnail or a strip cut close, what averaging brings out of a blank page is as large as
/// writing. Of the blank cuts of `scripts/small-photo-accuracy.sh 100 100 5` (40-120 px high),
/// without this bound, 23 more of 2,000 were read as digits; looked at only at half size, 1
/// (the edge of a shadow across a blurred ruled strip 319x112 px, read as a 1); with it, none.
/// The pictures whose numbers this look reads are 203 px and more on their shorter side.
const SMOOTHED_LOOK_MIN_SIDE: u32 = 150;
/// What the smoothed look finds counts as writing when its tallest glyph is at least this share
/// of the picture's shorter side: what averaging brings out of a blank page (the pieces of its
/// printed lines along a shadow's edge, where their removal leaves them) is specks. Of the
/// numbers it reads, the smallest stands 0.19 of the side; the one blank page of 2,000 read
/// without this bound showed specks 0.06 of it.
const SMOOTHED_MIN_HEIGHT: f32 = 0.1;

/// One digit found in a picture, ready for a model.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundDigit {
    /// What a model sees: MNIST-style 28x28 pixels, and when its strokes were a thin pen line
    /// redrawn at MNIST's width, the digit drawn with other pens too ([`Styled::drawings`]).
    pub styled: Styled,
    /// Where the digit is, in the original picture's pixels.
    pub bbox: BBox,
}

/// The whole picture at `path` as a single digit.
pub fn read_digit(path: &Path) -> Result<FoundDigit, ImageError> {
    let image = read_image(path)?;
    digit_in_image(&image).ok_or_else(|| ImageError::NoInk {
        path: path.to_path_buf(),
    })
}

/// The digits of the number written left to right in the picture at `path`.
pub fn read_number(path: &Path) -> Result<Vec<Segment<FoundDigit>>, ImageError> {
    let image = read_image(path)?;
    let digits = digits_in_image(&image);
    if digits.is_empty() {
        return Err(ImageError::NoInk {
            path: path.to_path_buf(),
        });
    }
    Ok(digits)
}

/// All the ink of `image` as one digit; `None` when there is none.
pub fn digit_in_image(image: &DynamicImage) -> Option<FoundDigit> {
    let (map, placement) = analysable(image);
    segment::single_glyph(&map).map(|g| found(&g, &placement, image))
}

/// The digits of the number in `image`, left to right; empty when there is no ink.
pub fn digits_in_image(image: &DynamicImage) -> Vec<Segment<FoundDigit>> {
    let (map, placement) = analysable(image);
    segment::number_glyphs(&map)
        .iter()
        .map(|s| s.map(|g| found(g, &placement, image)))
        .collect()
}

/// The ink map segmentation works on: what the pipeline takes for writing in `image`, at the
/// analysis size (for looking at, as `examples/see.rs` does).
pub fn ink_map(image: &DynamicImage) -> InkMap {
    analysable(image).0
}

/// The ink map of `image` (the table around the page painted over first: `page`), shrunk if
/// needed (to [`ANALYSIS_MAX_SIDE`], and by half again when the picture is out of focus or holds
/// no ink at that size; over the narrowest window when neither finds any, and on averaged planes
/// when none does), seen from above where the page was photographed at a slant (`perspective`),
/// without the page's printed lines, and where its pixels lie in the original.
fn analysable(image: &DynamicImage) -> (InkMap, Placement) {
    let side = image.width().max(image.height());
    let mut factor = side.div_ceil(ANALYSIS_MAX_SIDE).max(1);
    let mut planes = ink::Planes::from_image(image, factor as usize);
    let page_edges = page::PageEdges::find(&planes);
    page_edges.paint_over(&mut planes);
    let (mut map, mut contrast) = InkMap::found_in(&planes);
    // A page photographed at a slant is looked at as if from straight above.
    let rectification = perspective::Rectification::find(&map);
    // Every ink map of the view is told where the picture is out of view.
    let in_view = |mut map: InkMap| {
        if let Some(r) = &rectification {
            r.mark_outside(&mut map);
        }
        map
    };
    if let Some(r) = &rectification {
        planes = r.warp(&planes);
        let (view, view_contrast) = InkMap::found_in(&planes);
        (map, contrast) = (in_view(view), view_contrast);
    }
    let first_factor = factor;
    let thin_strokes = |map: &InkMap| {
        map.stroke_width()
            .is_some_and(|w| w <= SECOND_LOOK_MAX_STROKE)
    };
    let blank = map.is_blank();
    // The planes at half size where they were looked at but not taken, and whether they were.
    let (mut half_planes, mut halved) = (None, false);
    if (blank || map.out_of_focus()) && side / (2 * factor) >= HALF_SIZE_MIN_SIDE {
        let mut half_look = ink::Planes::from_image(image, 2 * factor as usize);
        page_edges.paint_over(&mut half_look);
        if let Some(r) = &rectification {
            half_look = r.warp(&half_look);
        }
        let (half, half_contrast) = InkMap::found_in(&half_look);
        let half = in_view(half);
        if !blank || thin_strokes(&half) {
            factor *= 2;
            halved = true;
            map = half;
            contrast = half_contrast;
            planes = half_look;
        } else {
            half_planes = Some(half_look);
        }
    }
    lines::remove_page_lines(&mut map, Some(&planes));
    if map.is_blank() {
        // A lone pen line on a page with a shadow's sharp edge across it: over wide windows the
        // shade is in the noise and hides the line, and with no stroke found there is no stroke
        // width to narrow the window from. Looked at over the narrowest window, only thin strokes
        // on a page without printed lines count: that window leaves wedges of false ink along
        // the edge, and pieces of the lines it finds. (A page's lines, found over the wide
        // windows, give them the stroke width to narrow from.) The plane and polarity are the
        // first look's.
        let mut narrow = in_view(InkMap::from_planes_over_narrow_window(&planes, contrast));
        let printed_lines = lines::remove_page_lines(&mut narrow, Some(&planes));
        if printed_lines == 0 && thin_strokes(&narrow) {
            map = narrow;
        }
    }
    let half_size = if halved {
        Some(&planes)
    } else {
        half_planes.as_ref()
    };
    let large = image.width().min(image.height()) >= SMOOTHED_LOOK_MIN_SIDE;
    if let (true, true, Some(half_size)) = (map.is_blank(), large, half_size) {
        // A faint photo out of focus: its pen line spread over a band several pixels wide
        // stands too little above the paper's noise, even at half size. Averaged over each
        // pixel's neighbours, the noise falls far more than the blurred line's contrast.
        let smooth = half_size.smoothed(SMOOTHING_RADIUS);
        let mut smoothed = in_view(InkMap::from_smoothed_planes(&smooth));
        lines::remove_page_lines(&mut smoothed, Some(&smooth));
        if thin_strokes(&smoothed) && writing_sized(&smoothed) {
            if !halved {
                factor *= 2;
            }
            map = smoothed;
        }
    }
    match &rectification {
        // The table past a slanted page's edges is painted over, but not cleared in the view.
        Some(r) => r.clear_near_outside(&mut map),
        None => page_edges.clear_past(&mut map),
    }
    map.drop_faint_alone();
    let placement = Placement {
        factor: factor as f64,
        rectified: rectification.map(|r| (first_factor as f64, r)),
    };
    (map, placement)
}

/// Whether the tallest glyph of `map` stands at least [`SMOOTHED_MIN_HEIGHT`] of its shorter
/// side.
fn writing_sized(map: &InkMap) -> bool {
    let tallest = segment::number_glyphs(map)
        .iter()
        .flat_map(|s| s.candidates())
        .map(|g| g.bbox.h)
        .max()
        .unwrap_or(0);
    tallest as f32 >= SMOOTHED_MIN_HEIGHT * map.width.min(map.height) as f32
}

fn found(glyph: &Glyph, placement: &Placement, image: &DynamicImage) -> FoundDigit {
    let b = glyph.bbox;
    let (w, h) = (image.width() as f64, image.height() as f64);
    // The box's corners in the original picture, and the box around them. A box of a view from
    // above is not a box of the photo, and the box around its corners there holds much paper:
    // the corners of the glyph's inked pixels are mapped back instead.
    let mut corners: Vec<(u32, u32)> = Vec::new();
    if placement.rectified.is_some() {
        for (i, _) in glyph.ink.iter().enumerate().filter(|(_, &v)| v > 0.0) {
            let (x, y) = (b.x + i as u32 % b.w, b.y + i as u32 / b.w);
            corners.extend([(x, y), (x + 1, y), (x, y + 1), (x + 1, y + 1)]);
        }
    }
    if corners.is_empty() {
        corners = vec![
            (b.x, b.y),
            (b.x + b.w, b.y),
            (b.x, b.y + b.h),
            (b.x + b.w, b.y + b.h),
        ];
    }
    let corners: Vec<(f64, f64)> = corners
        .into_iter()
        .map(|(x, y)| placement.to_original(x as f64, y as f64))
        .collect();
    let [x0, x1, y0, y1] = perspective::bounds(&corners);
    let to_original = |v: f64, limit: f64| v.round().clamp(0.0, limit) as u32;
    let (x, y) = (to_original(x0, w), to_original(y0, h));
    let right = to_original(x1, w).max(x + 1);
    let bottom = to_original(y1, h).max(y + 1);
    FoundDigit {
        styled: style(glyph),
        bbox: BBox {
            x,
            y,
            w: right - x,
            h: bottom - y,
        },
    }
}

/// Where the ink map [`analysable`] returns lies in the original picture.
struct Placement {
    /// Original pixels per pixel of the map.
    factor: f64,
    /// Original pixels per pixel of the first look, where the picture was rectified (a page
    /// photographed at a slant), and the rectification, found at that size.
    rectified: Option<(f64, perspective::Rectification)>,
}

impl Placement {
    fn to_original(&self, x: f64, y: f64) -> (f64, f64) {
        match &self.rectified {
            None => (x * self.factor, y * self.factor),
            Some((first, rectification)) => {
                let ratio = self.factor / first;
                let (px, py) = rectification.to_picture(x * ratio, y * ratio);
                (px * first, py * first)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma};

    /// A 600x600 page of paper 200 with a sensor's noise (a hash, ±6 levels), darker by up to
    /// `contrast` levels where `shade(x, y)` (0-1) says.
    fn noisy_page(contrast: f32, shade: impl Fn(f32, f32) -> f32) -> DynamicImage {
        DynamicImage::ImageLuma8(GrayImage::from_fn(600, 600, |x, y| {
            let noise = (x.wrapping_mul(73_856_093) ^ y.wrapping_mul(19_349_663)) % 13;
            let dark = contrast * shade(x as f32, y as f32);
            Luma([(200.0 - dark + noise as f32 - 6.0).round() as u8])
        }))
    }

    /// A ring 160 px across drawn as a pen line blurred by a Gaussian of 2 px.
    fn ring(x: f32, y: f32) -> f32 {
        ring_across(160.0)(x, y)
    }

    /// A ring `across` px across, drawn as [`ring`] is.
    fn ring_across(across: f32) -> impl Fn(f32, f32) -> f32 {
        move |x, y| {
            let d = ((x - 300.0).powi(2) + (y - 300.0).powi(2)).sqrt() - across / 2.0;
            (-d * d / 8.0).exp()
        }
    }

    /// A soft band of shade 60 px wide down the page.
    fn band(x: f32, _: f32) -> f32 {
        let d = ((x - 300.0).abs() - 30.0).max(0.0);
        (-d * d / 50.0).exp()
    }

    #[test]
    fn a_stroke_on_a_slanted_squared_page_is_found_where_the_photo_shows_it() {
        // A squared page (lines every 40 px, 2 px wide) seen by a camera tilted over its top,
        // so its columns converge toward the bottom, and a bar (a 1) drawn on the photo near
        // its bottom left corner, where the view from above moves it most.
        let (w, h) = (900u32, 600u32);
        let (cx, cy, tilt) = (450.0f32, 300.0f32, 0.0005f32);
        let bar = (150.0..162.0, 400.0..540.0);
        let photo = GrayImage::from_fn(w, h, |x, y| {
            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
            let q = 1.0 - tilt * (py - cy);
            let (u, v) = ((px - cx) / q + cx, (py - cy) / q + cy);
            let near = |p: f32| {
                let t = p.rem_euclid(40.0);
                t.min(40.0 - t)
            };
            let on_bar = bar.0.contains(&px) && bar.1.contains(&py);
            let grey = if on_bar {
                40
            } else if near(u) < 1.0 || near(v) < 1.0 {
                170
            } else {
                235
            };
            Luma([grey])
        });
        let digits = digits_in_image(&DynamicImage::ImageLuma8(photo));
        let boxes: Vec<BBox> = digits
            .iter()
            .flat_map(|s| s.candidates().map(|d| d.bbox))
            .collect();
        assert_eq!(boxes.len(), 1, "{boxes:?}");
        let b = boxes[0];
        let (x0, y0, x1, y1) = (
            b.x as f32,
            b.y as f32,
            (b.x + b.w) as f32,
            (b.y + b.h) as f32,
        );
        assert!(
            (x0 - bar.0.start).abs() <= 2.0
                && (x1 - bar.0.end).abs() <= 2.0
                && (y0 - bar.1.start).abs() <= 2.0
                && (y1 - bar.1.end).abs() <= 2.0,
            "{b:?}"
        );
    }

    #[test]
    fn blank_pages_whose_shade_darkens_towards_the_frame_are_refused() {
        // Pages of `scripts/photo-accuracy.sh 0 0 100 SEED` (seed, kind, index) with the edge of
        // a shadow across them and the shade darkening towards the frame. Over windows two
        // thirds of the picture across, the paper beside the edge is taken from the shade's
        // lighter part, and the wedge of false ink left there was read as a 1, a 2, a 6 or an 8.
        use synth::photo::{blank_photos, Blank};
        for (seed, blank, index) in [
            (5, Blank::Page, 95),
            (5, Blank::BlurredPage, 31),
            (31, Blank::Page, 7),
            (31, Blank::BlurredPage, 13),
            (31, Blank::BlurredPage, 53),
        ] {
            let (page, encoding) = blank_photos(seed, blank).nth(index).unwrap();
            let bytes = synth::encode(&page, encoding);
            let page = image::load_from_memory(&bytes).unwrap();
            let name = format!("seed {seed}, {} {index}", blank.name());
            assert!(digit_in_image(&page).is_none(), "{name}");
            assert!(digits_in_image(&page).is_empty(), "{name}");
        }
    }

    #[test]
    fn a_lone_pen_line_on_a_page_in_shadow_is_found_over_the_narrowest_window() {
        // A 1 on a page under a gradient and vignetting, its lower quarter in a shadow with a
        // sharp edge (the combined condition without its rules, seed 17): over wide windows,
        // and at half size, the shade is in the noise and hides the line.
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/regressions/17-00730-combined-without-lines-number-1.jpg");
        let page = read_image(&file).unwrap();
        assert!(
            InkMap::from_image(&page).is_blank(),
            "the wide windows find it"
        );
        let found = digit_in_image(&page).expect("the line is found");
        // The pen line runs from about (700, 345) down to (640, 525).
        let b = found.bbox;
        assert!(
            (630..=650).contains(&b.x) && (335..=355).contains(&b.y) && b.h >= 160 && b.w <= 80,
            "{b:?}"
        );
    }

    #[test]
    fn a_faint_stroke_lost_in_the_noise_is_found_at_half_size_and_a_faint_patch_is_not() {
        // At full size the paper's noise hides both; at half size it is averaged down, and the
        // ring stands out as a pen line while the band stands out as a patch, too wide to be one.
        let faint_ring = noisy_page(24.0, ring);
        assert!(InkMap::from_image(&faint_ring).is_blank());
        let found = digit_in_image(&faint_ring).expect("the ring is found at half size");
        assert!(found.bbox.w > 150 && found.bbox.h > 150, "{:?}", found.bbox);
        let faint_band = noisy_page(24.0, band);
        assert!(InkMap::from_image(&faint_band).is_blank());
        assert!(digit_in_image(&faint_band).is_none());
        assert!(digit_in_image(&noisy_page(0.0, ring)).is_none());
    }

    #[test]
    fn a_fainter_stroke_is_found_on_smoothed_planes_and_a_faint_patch_or_a_speck_is_not() {
        // Fainter still, the ring stays in the noise at half size too; averaged over each
        // pixel's neighbours, the noise falls by up to 3 and the ring stands out.
        let faint_ring = noisy_page(18.0, ring);
        let half = ink::Planes::from_image(&faint_ring, 2);
        assert!(InkMap::from_planes(&half).is_blank(), "found at half size");
        let found = digit_in_image(&faint_ring).expect("the ring is found on smoothed planes");
        assert!(found.bbox.w > 150 && found.bbox.h > 150, "{:?}", found.bbox);
        assert_eq!(digits_in_image(&faint_ring).len(), 1);
        // The band stands out as a patch, too wide to be a pen line; a ring 40 px across, a
        // fifteenth of the page, is a speck, not writing.
        assert!(digit_in_image(&noisy_page(18.0, band)).is_none());
        let speck = noisy_page(18.0, ring_across(40.0));
        let half = ink::Planes::from_image(&speck, 2);
        assert!(!InkMap::from_smoothed_planes(&half.smoothed(SMOOTHING_RADIUS)).is_blank());
        assert!(digit_in_image(&speck).is_none());
        assert!(digits_in_image(&speck).is_empty());
    }

    #[test]
    fn a_strip_too_narrow_is_not_looked_at_on_smoothed_planes() {
        // A faint ring 100 px across is found on a 600-px page, and not on a strip of it 140 px
        // high, under SMOOTHED_LOOK_MIN_SIDE: there what averaging brings out of a blank page
        // is as large as writing.
        let page = noisy_page(18.0, ring_across(100.0));
        assert!(
            digit_in_image(&page).is_some(),
            "the ring is found on the page"
        );
        let strip = page.crop_imm(0, 230, 600, 140);
        assert!(digit_in_image(&strip).is_none());
        assert!(digits_in_image(&strip).is_empty());
    }
}
