//! Photo-like pictures of handwriting, one kind per [`Condition`] of issue 17: what people
//! photograph when they write a digit with a pen on a notebook page. The answers are known, so
//! the pictures measure `predict` and `read` per condition (`scripts/photo-accuracy.sh`,
//! `tests/photos.rs`), and [`Blank`] pages with no writing must still be refused.
//!
//! Each digit is an MNIST test digit thinned to its centre line (`pen_path`: cut from its grey
//! levels where no faint stroke falls apart) and drawn again as a pen line 1-4 px wide on a
//! picture 300-1400 px across (a phone photo's scale), so the writing is a person's but the
//! stroke is a ballpoint's. The page under it is plain, ruled, squared or recycled paper,
//! possibly with a red margin line, lit unevenly, in a shadow, turned a little, out of focus,
//! with sensor noise and JPEG compression.

use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use image::{DynamicImage, GrayImage, Rgb, Rgb32FImage, RgbImage};
use mnist_data::{IMAGE_PIXELS, IMAGE_SIDE};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{encode, gaussian, number_picture, Colour, Encoding, Style};
use crate::stroke;

/// What is hard about a picture. `Combined` has all of it at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// A grey or black pen line 1-4 px wide on plain white paper.
    Pen,
    /// Blue ballpoint ink on off-white paper, a shadow falling across the page.
    BlueShadow,
    /// Light blue rules; the digits sit on a rule and may cross the one above.
    Ruled,
    /// Squared (grid) paper: lines cross every digit.
    Squared,
    /// Ruled paper with a red margin line that may cross the writing.
    Margin,
    /// Light falling off across the page and into the corners.
    UnevenLight,
    /// Pencil on grey, fibrous recycled paper.
    Pencil,
    /// Ruled or squared paper, maybe a margin, blue or black ink, shadow, uneven light, the page
    /// turned up to 3 degrees, JPEG.
    Combined,
    /// The page photographed out of focus: pen or pencil, plain or ruled paper, everything
    /// blurred over 1-2.5 px (a Gaussian's deviation) before the sensor's noise, so a thin line
    /// is spread into a faint, wide band.
    OutOfFocus,
    /// The page lying on a table, smaller than the picture: one to four of its edges in view,
    /// the table (wood, grey or black, with its grain) beyond them, the page turned up to 4
    /// degrees; pen or blue ink, plain, ruled or squared paper, half the time a shadow.
    OnDesk,
    /// The page photographed at a slant, the phone tilted 5-15 degrees from straight above it:
    /// the page's far side looks smaller than its near side, so its rules are spaced unevenly
    /// and its grid's other lines converge. Ruled or squared paper, half the time a margin
    /// line, pen or blue ink, a gradient, the page turned up to 3 degrees.
    Slanted,
}

impl Condition {
    pub const ALL: [Condition; 11] = [
        Condition::Pen,
        Condition::BlueShadow,
        Condition::Ruled,
        Condition::Squared,
        Condition::Margin,
        Condition::UnevenLight,
        Condition::Pencil,
        Condition::Combined,
        Condition::OutOfFocus,
        Condition::OnDesk,
        Condition::Slanted,
    ];

    /// The name used in file names and tables.
    pub fn name(self) -> &'static str {
        match self {
            Condition::Pen => "pen",
            Condition::BlueShadow => "blue-shadow",
            Condition::Ruled => "ruled",
            Condition::Squared => "squared",
            Condition::Margin => "margin",
            Condition::UnevenLight => "uneven-light",
            Condition::Pencil => "pencil",
            Condition::Combined => "combined",
            Condition::OutOfFocus => "out-of-focus",
            Condition::OnDesk => "on-desk",
            Condition::Slanted => "slanted",
        }
    }
}

/// Pictures with nothing written on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blank {
    /// Plain paper, unevenly lit, half the time in a shadow.
    Page,
    /// A ruled page, half the time with a margin line, turned a little.
    RuledPage,
    /// A squared page, turned a little.
    SquaredPage,
    /// A photo of a plastered wall: texture at every scale, and no ink.
    Wall,
    /// Plain or ruled paper photographed out of focus, half the time in a shadow: the blurred
    /// edge of a shadow and the blurred rules are as faint and soft as blurred writing, and must
    /// still not pass for it.
    BlurredPage,
    /// A plain or ruled page on a table, one to four of its edges in view.
    DeskPage,
    /// A ruled or squared page photographed at a slant, as in [`Condition::Slanted`].
    SlantedPage,
}

impl Blank {
    pub const ALL: [Blank; 7] = [
        Blank::Page,
        Blank::RuledPage,
        Blank::SquaredPage,
        Blank::Wall,
        Blank::BlurredPage,
        Blank::DeskPage,
        Blank::SlantedPage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Blank::Page => "blank-page",
            Blank::RuledPage => "blank-ruled",
            Blank::SquaredPage => "blank-squared",
            Blank::Wall => "blank-wall",
            Blank::BlurredPage => "blank-blurred",
            Blank::DeskPage => "blank-desk",
            Blank::SlantedPage => "blank-slanted",
        }
    }
}

/// Printed lines of the page, in page coordinates (before the page is turned).
#[derive(Debug, Clone, PartialEq)]
enum Ruling {
    None,
    /// Horizontal rules every `spacing` pixels, one at `offset`.
    Ruled {
        spacing: f32,
        offset: f32,
    },
    /// Horizontal and vertical lines every `spacing` pixels.
    Squared {
        spacing: f32,
        offset: [f32; 2],
    },
}

/// A shadow's edge: the half-plane beyond `edge` (pixels along `normal`) is darkened to
/// `depth` of the light, over a soft `penumbra`.
#[derive(Debug, Clone, PartialEq)]
struct Shadow {
    normal: [f32; 2],
    edge: f32,
    depth: f32,
    penumbra: f32,
}

impl Ruling {
    /// Ruled or squared paper, as likely each, its spacing set once the writing is placed
    /// ([`rule_for`]).
    fn ruled_or_squared(rng: &mut impl Rng) -> Self {
        if rng.random_bool(0.5) {
            Ruling::Ruled {
                spacing: 0.0,
                offset: 0.0,
            }
        } else {
            Ruling::Squared {
                spacing: 0.0,
                offset: [0.0; 2],
            }
        }
    }
}

/// Everything about the page a digit is written on.
#[derive(Debug, Clone)]
struct Page {
    width: u32,
    height: u32,
    /// How far the page is turned, in radians.
    turn: f32,
    paper: [f32; 3],
    ruling: Ruling,
    rule_colour: [f32; 3],
    rule_width: f32,
    /// A vertical margin line at this x (page coordinates), if any.
    margin: Option<f32>,
    /// Recycled paper: fibres and specks.
    recycled: bool,
    /// A wall's plaster texture instead of paper.
    plaster: bool,
    ink: [f32; 3],
    pen: f32,
    pencil: bool,
    /// Light falls by this fraction across the page in direction `light_angle`.
    gradient: f32,
    light_angle: f32,
    /// Corners this much darker than the centre.
    vignette: f32,
    shadow: Option<Shadow>,
    /// Out of focus: the picture is blurred with a Gaussian of this deviation in pixels (0 is
    /// sharp) before the sensor's noise.
    blur: f32,
    noise: f32,
    /// The table the page lies on, where the picture shows past the page's edges.
    desk: Option<Desk>,
    /// The camera's tilt, when the page is photographed at a slant.
    slant: Option<Slant>,
}

/// A camera tilted away from straight above the page: the picture is the page seen in
/// perspective. Image point `d` (from the picture's centre) shows the point `scale * d / q` of
/// the untilted view, where `q = 1 + a * d.x + b * d.y` grows toward the page's near side.
#[derive(Debug, Clone, Copy)]
struct Slant {
    a: f32,
    b: f32,
    /// The largest `q` at a corner: the page's rectangle then lies wholly inside the picture,
    /// so writing placed on it is in view.
    scale: f32,
}

impl Slant {
    /// A tilt of 5-15 degrees in any direction, for a lens whose focal length is 0.8 times the
    /// picture's longer side (a phone's main camera: about 65 degrees across).
    fn random(width: u32, height: u32, rng: &mut impl Rng) -> Self {
        let focal = 0.8 * width.max(height) as f32;
        let tilt = rng.random_range(5.0f32..15.0).to_radians().tan() / focal;
        let towards = rng.random_range(0.0..std::f32::consts::TAU);
        let (a, b) = (tilt * towards.cos(), tilt * towards.sin());
        Self { a, b, scale: 1.0 }.fitted(width, height)
    }

    /// The same tilt with its scale set for a `width` x `height` picture.
    fn fitted(self, width: u32, height: u32) -> Self {
        let scale = 1.0 + self.a.abs() * width as f32 / 2.0 + self.b.abs() * height as f32 / 2.0;
        Self { scale, ..self }
    }

    /// The untilted view's offset from the centre of image offset `(dx, dy)`.
    fn flatten(&self, dx: f32, dy: f32) -> (f32, f32) {
        let q = 1.0 + self.a * dx + self.b * dy;
        (self.scale * dx / q, self.scale * dy / q)
    }

    /// The image offset of the untilted view's offset `(px, py)`: `flatten` undone.
    fn tilt(&self, px: f32, py: f32) -> (f32, f32) {
        let (px, py) = (px / self.scale, py / self.scale);
        let q = 1.0 - self.a * px - self.b * py;
        (px / q, py / q)
    }
}

/// A table under the page: past the page's `edges` (left, top, right, bottom, in page
/// coordinates; infinite where that edge is out of the picture) the picture shows it.
#[derive(Debug, Clone)]
struct Desk {
    edges: [f32; 4],
    colour: [f32; 3],
    /// How strongly its grain varies its colour (a fraction of it).
    grain: f32,
    /// Whether the grain runs across the picture (else down it).
    across: bool,
}

impl Desk {
    /// A table of wood, grey or black under `page`, showing past one to four of its edges, each
    /// at least [`DESK_MARGIN`] of the writing's height away from `writing` (its box in page
    /// coordinates, none on a blank page).
    fn random(page: &Page, writing: Option<[f32; 4]>, rng: &mut impl Rng) -> Self {
        let (w, h) = (page.width as f32, page.height as f32);
        let [x0, y0, x1, y1] = writing.unwrap_or([w / 2.0, h / 2.0, w / 2.0, h / 2.0]);
        let away = DESK_MARGIN * (y1 - y0);
        // How far in each edge may come: a strip of at least 3% of the picture shows, at most a
        // quarter of it, never nearer the writing than `away`.
        let room = [x0 - away, y0 - away, w - x1 - away, h - y1 - away];
        let side = [w, h, w, h];
        let mut edges = [
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
            f32::INFINITY,
            f32::INFINITY,
        ];
        let first = rng.random_range(0..4);
        for k in 0..4 {
            let (lo, hi) = (0.03 * side[k], (0.25 * side[k]).min(room[k]));
            if hi > lo && (k == first || rng.random_bool(0.6)) {
                let inset = rng.random_range(lo..hi);
                edges[k] = if k < 2 { inset } else { side[k] - inset };
            }
        }
        let colour = match rng.random_range(0..3) {
            // Light or mid wood.
            0 => {
                let r = rng.random_range(110.0..200.0);
                let g = r * rng.random_range(0.62..0.8);
                [r, g, g * rng.random_range(0.5..0.75)]
            }
            // Dark wood.
            1 => {
                let v = rng.random_range(30.0..100.0);
                [v, v * 0.82, v * 0.68]
            }
            // A grey or black table top.
            _ => [rng.random_range(20.0..160.0); 3],
        };
        Self {
            edges,
            colour,
            grain: rng.random_range(0.03..0.15),
            across: rng.random_bool(0.5),
        }
    }

    /// How far page point `(u, v)` lies past the page's edges (pixels; 0 or less on the page).
    fn past_edges(&self, u: f32, v: f32) -> f32 {
        let [l, t, r, b] = self.edges;
        (l - u).max(t - v).max(u - r).max(v - b)
    }
}

/// Each edge of a page on a table stays at least this many times the writing's height away from
/// it: a page's margin.
const DESK_MARGIN: f32 = 0.3;

impl Page {
    fn random(condition: Option<Condition>, blank: Option<Blank>, rng: &mut impl Rng) -> Self {
        let long = rng.random_range(300..=1400u32);
        let short = (long as f32 * rng.random_range(0.6..1.0)).round() as u32;
        let (width, height) = if rng.random_bool(0.5) {
            (long, short)
        } else {
            (short, long)
        };
        let white = rng.random_range(225.0..252.0);
        let tint = [(); 3].map(|_| rng.random_range(-5.0..5.0f32));
        let mut page = Page {
            width,
            height,
            turn: 0.0,
            paper: [0, 1, 2].map(|i| white + tint[i]),
            ruling: Ruling::None,
            rule_colour: [
                rng.random_range(140.0..190.0),
                rng.random_range(180.0..215.0),
                rng.random_range(215.0..245.0),
            ],
            rule_width: rng.random_range(1.0..2.5),
            margin: None,
            recycled: false,
            plaster: false,
            ink: [0.0; 3].map(|_| 0.0),
            pen: rng.random_range(1.0..4.0),
            pencil: false,
            gradient: rng.random_range(0.0..0.15),
            light_angle: rng.random_range(0.0..std::f32::consts::TAU),
            vignette: 0.0,
            shadow: None,
            blur: 0.0,
            noise: rng.random_range(1.0..4.0),
            desk: None,
            slant: None,
        };
        let grey = rng.random_range(20.0..110.0);
        page.ink = [grey; 3];
        let blue = |rng: &mut dyn rand::RngCore| {
            [
                rng.random_range(20.0..70.0),
                rng.random_range(30.0..80.0),
                rng.random_range(110.0..190.0),
            ]
        };
        // Pencil: graphite grey, the same in every channel.
        let graphite = |rng: &mut dyn rand::RngCore| [rng.random_range(70.0..130.0); 3];
        match (condition, blank) {
            (Some(Condition::Pen), _) => {}
            (Some(Condition::BlueShadow), _) => {
                page.paper = [
                    rng.random_range(235.0..250.0),
                    rng.random_range(228.0..245.0),
                    rng.random_range(205.0..232.0),
                ];
                page.ink = blue(rng);
                page.shadow = Some(Shadow::random(width, height, rng));
            }
            (Some(Condition::Ruled), _) => {
                page.ruling = Ruling::Ruled {
                    spacing: 0.0,
                    offset: 0.0,
                };
                if rng.random_bool(0.5) {
                    page.ink = blue(rng);
                }
            }
            (Some(Condition::Squared), _) => {
                page.ruling = Ruling::Squared {
                    spacing: 0.0,
                    offset: [0.0; 2],
                };
                page.rule_width = rng.random_range(1.0..2.0);
                if rng.random_bool(0.5) {
                    page.ink = blue(rng);
                }
            }
            (Some(Condition::Margin), _) => {
                page.ruling = Ruling::Ruled {
                    spacing: 0.0,
                    offset: 0.0,
                };
                page.margin = Some(width as f32 * rng.random_range(0.1..0.8));
                if rng.random_bool(0.5) {
                    page.ink = blue(rng);
                }
            }
            (Some(Condition::UnevenLight), _) => {
                page.gradient = rng.random_range(0.3..0.6);
                page.vignette = rng.random_range(0.15..0.4);
            }
            (Some(Condition::Pencil), _) => {
                let base = rng.random_range(195.0..222.0);
                page.paper = [base + 3.0, base, base - rng.random_range(2.0..12.0)];
                page.recycled = true;
                page.pencil = true;
                page.ink = graphite(rng);
                page.pen = rng.random_range(1.5..3.5);
                page.gradient = rng.random_range(0.0..0.25);
            }
            (Some(Condition::Combined), _) => {
                page.ruling = Ruling::ruled_or_squared(rng);
                if rng.random_bool(0.5) {
                    page.margin = Some(width as f32 * rng.random_range(0.1..0.8));
                }
                if rng.random_bool(0.6) {
                    page.ink = blue(rng);
                }
                page.shadow = Some(Shadow::random(width, height, rng));
                page.gradient = rng.random_range(0.2..0.45);
                page.vignette = rng.random_range(0.1..0.3);
                page.turn = rng.random_range(-3.0f32..3.0).to_radians();
            }
            (Some(Condition::OutOfFocus), _) => {
                if rng.random_bool(0.5) {
                    page.ruling = Ruling::Ruled {
                        spacing: 0.0,
                        offset: 0.0,
                    };
                }
                match rng.random_range(0..3) {
                    0 => {}
                    1 => page.ink = blue(rng),
                    _ => {
                        page.pencil = true;
                        page.ink = graphite(rng);
                    }
                }
                page.blur = rng.random_range(1.0..2.5);
            }
            (Some(Condition::OnDesk), _) => {
                page.ruling = match rng.random_range(0..3) {
                    0 => Ruling::None,
                    1 => Ruling::Ruled {
                        spacing: 0.0,
                        offset: 0.0,
                    },
                    _ => Ruling::Squared {
                        spacing: 0.0,
                        offset: [0.0; 2],
                    },
                };
                if rng.random_bool(0.5) {
                    page.ink = blue(rng);
                }
                if rng.random_bool(0.5) {
                    page.shadow = Some(Shadow::random(width, height, rng));
                }
                page.gradient = rng.random_range(0.1..0.4);
                page.turn = rng.random_range(-4.0f32..4.0).to_radians();
                // The table's edges come once the writing is placed (`Drawn::on_desk`).
            }
            (Some(Condition::Slanted), _) => {
                page.ruling = Ruling::ruled_or_squared(rng);
                if rng.random_bool(0.5) {
                    page.margin = Some(width as f32 * rng.random_range(0.1..0.8));
                }
                if rng.random_bool(0.5) {
                    page.ink = blue(rng);
                }
                page.gradient = rng.random_range(0.1..0.35);
                page.turn = rng.random_range(-3.0f32..3.0).to_radians();
                page.slant = Some(Slant::random(width, height, rng));
            }
            (None, Some(blank)) => {
                page.gradient = rng.random_range(0.1..0.5);
                page.vignette = rng.random_range(0.0..0.3);
                if rng.random_bool(0.5) {
                    page.shadow = Some(Shadow::random(width, height, rng));
                }
                let spacing = short as f32 * rng.random_range(0.05..0.15);
                match blank {
                    Blank::Page => {}
                    Blank::RuledPage => {
                        page.ruling = Ruling::Ruled {
                            spacing,
                            offset: rng.random_range(0.0..spacing),
                        };
                        if rng.random_bool(0.5) {
                            page.margin = Some(width as f32 * rng.random_range(0.1..0.8));
                        }
                        page.turn = rng.random_range(-3.0f32..3.0).to_radians();
                    }
                    Blank::SquaredPage => {
                        page.ruling = Ruling::Squared {
                            spacing,
                            offset: [
                                rng.random_range(0.0..spacing),
                                rng.random_range(0.0..spacing),
                            ],
                        };
                        page.turn = rng.random_range(-3.0f32..3.0).to_radians();
                    }
                    Blank::Wall => {
                        let base = rng.random_range(150.0..235.0);
                        page.paper = [base + 6.0, base + 2.0, base - 6.0];
                        page.plaster = true;
                        page.shadow = None;
                    }
                    Blank::BlurredPage => {
                        if rng.random_bool(0.5) {
                            page.ruling = Ruling::Ruled {
                                spacing,
                                offset: rng.random_range(0.0..spacing),
                            };
                        }
                        page.blur = rng.random_range(1.0..3.0);
                    }
                    Blank::DeskPage => {
                        if rng.random_bool(0.5) {
                            page.ruling = Ruling::Ruled {
                                spacing,
                                offset: rng.random_range(0.0..spacing),
                            };
                        }
                        page.turn = rng.random_range(-4.0f32..4.0).to_radians();
                        page.desk = Some(Desk::random(&page, None, rng));
                    }
                    Blank::SlantedPage => {
                        page.ruling = if rng.random_bool(0.5) {
                            Ruling::Ruled {
                                spacing,
                                offset: rng.random_range(0.0..spacing),
                            }
                        } else {
                            Ruling::Squared {
                                spacing,
                                offset: [
                                    rng.random_range(0.0..spacing),
                                    rng.random_range(0.0..spacing),
                                ],
                            }
                        };
                        if rng.random_bool(0.5) {
                            page.margin = Some(width as f32 * rng.random_range(0.1..0.8));
                        }
                        page.turn = rng.random_range(-3.0f32..3.0).to_radians();
                        page.slant = Some(Slant::random(width, height, rng));
                    }
                }
            }
            (None, None) => {}
        }
        page
    }

    /// Page coordinates of image pixel centre `(x, y)`.
    fn to_page(&self, x: f32, y: f32) -> (f32, f32) {
        let (cx, cy) = (self.width as f32 / 2.0, self.height as f32 / 2.0);
        let (s, c) = self.turn.sin_cos();
        let (mut dx, mut dy) = (x - cx, y - cy);
        if let Some(slant) = &self.slant {
            (dx, dy) = slant.flatten(dx, dy);
        }
        (cx + dx * c + dy * s, cy - dx * s + dy * c)
    }

    /// Image coordinates of page point `(u, v)`.
    fn to_image(&self, u: f32, v: f32) -> (f32, f32) {
        let (cx, cy) = (self.width as f32 / 2.0, self.height as f32 / 2.0);
        let (s, c) = self.turn.sin_cos();
        let (du, dv) = (u - cx, v - cy);
        match &self.slant {
            None => (cx + du * c - dv * s, cy + du * s + dv * c),
            Some(slant) => {
                let (dx, dy) = slant.tilt(du * c - dv * s, du * s + dv * c);
                (cx + dx, cy + dy)
            }
        }
    }

    /// Renders the page with `ink` (coverage 0-1 per pixel) written on it.
    fn render(&self, ink: &[f32], rng: &mut impl Rng) -> DynamicImage {
        let (w, h) = (self.width, self.height);
        let fibres = (self.recycled || self.plaster).then(|| Texture::new(w, h, rng));
        let desk = self.desk.as_ref().map(|d| (d, Texture::new(w, h, rng)));
        let grain: Vec<f32> = if self.pencil {
            (0..w * h).map(|_| rng.random_range(0.45..1.0)).collect()
        } else {
            Vec::new()
        };
        let specks: Vec<(f32, f32, f32, f32)> = if self.recycled {
            (0..rng.random_range(20..80))
                .map(|_| {
                    (
                        rng.random_range(0.0..w as f32),
                        rng.random_range(0.0..h as f32),
                        rng.random_range(0.4..1.4),
                        rng.random_range(0.1..0.35),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        let (lx, ly) = (self.light_angle.cos(), self.light_angle.sin());
        let diagonal = ((w * w + h * h) as f32).sqrt();
        // The light reaching the lens (0-255), then the lens's blur, then the sensor's noise.
        let mut scene = Rgb32FImage::new(w, h);
        for y in 0..h {
            for x in 0..w {
                let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                let (u, v) = self.to_page(px, py);
                let mut reflect = self.paper.map(|p| p / 255.0);
                if let Some(t) = &fibres {
                    let amount = if self.plaster { 0.10 } else { 0.05 };
                    let f = 1.0 + amount * t.at(px, py);
                    reflect = reflect.map(|r| r * f);
                }
                let mut lines = self.rule_coverage(u, v);
                if let Some(m) = self.margin {
                    let c = cover(self.rule_width.max(1.5), (u - m).abs());
                    let red = [225.0, 95.0, 110.0];
                    reflect = multiply(reflect, red, c);
                }
                lines = lines.clamp(0.0, 1.0);
                reflect = multiply(reflect, self.rule_colour, lines);
                for &(sx, sy, r, dark) in &specks {
                    let d = ((px - sx).powi(2) + (py - sy).powi(2)).sqrt();
                    let c = cover(2.0 * r, d) * dark;
                    reflect = reflect.map(|v| v * (1.0 - c));
                }
                let i = (y * w + x) as usize;
                let mut c = ink[i];
                if self.pencil {
                    c *= grain[i];
                }
                reflect = multiply(reflect, self.ink, c);
                if let Some((desk, grain)) = &desk {
                    // Past the page's edge (anti-aliased over a pixel), the table and its grain:
                    // streaks along it.
                    let table = (0.5 + desk.past_edges(u, v)).clamp(0.0, 1.0);
                    if table > 0.0 {
                        let along = if desk.across {
                            grain.at(px / 8.0, py)
                        } else {
                            grain.at(px, py / 8.0)
                        };
                        let wood = desk.colour.map(|c| c / 255.0 * (1.0 + desk.grain * along));
                        reflect = [0, 1, 2].map(|i| reflect[i] * (1.0 - table) + wood[i] * table);
                    }
                }
                // Light: a gradient, dark corners, a shadow.
                let along = ((px - w as f32 / 2.0) * lx + (py - h as f32 / 2.0) * ly) / diagonal;
                let mut light = 1.0 - self.gradient * (0.5 + along);
                let r = ((px - w as f32 / 2.0).powi(2) + (py - h as f32 / 2.0).powi(2)).sqrt()
                    / (diagonal / 2.0);
                light *= 1.0 - self.vignette * r * r;
                if let Some(s) = &self.shadow {
                    light *= s.light(px, py);
                }
                scene.put_pixel(x, y, Rgb(reflect.map(|r| r * light * 255.0)));
            }
        }
        if self.blur > 0.0 {
            scene = imageops::blur(&scene, self.blur);
        }
        let img = RgbImage::from_fn(w, h, |x, y| {
            let noise = gaussian(rng) * self.noise;
            Rgb(scene
                .get_pixel(x, y)
                .0
                .map(|v| (v + noise).round().clamp(0.0, 255.0) as u8))
        });
        DynamicImage::ImageRgb8(img)
    }

    /// Coverage of the printed rules or grid at page point `(u, v)`.
    fn rule_coverage(&self, u: f32, v: f32) -> f32 {
        let near = |p: f32, spacing: f32, offset: f32| {
            let t = (p - offset).rem_euclid(spacing);
            t.min(spacing - t)
        };
        match &self.ruling {
            Ruling::None => 0.0,
            Ruling::Ruled { spacing, offset } => cover(self.rule_width, near(v, *spacing, *offset)),
            Ruling::Squared { spacing, offset } => {
                cover(self.rule_width, near(v, *spacing, offset[1]))
                    .max(cover(self.rule_width, near(u, *spacing, offset[0])))
            }
        }
    }
}

impl Shadow {
    fn random(w: u32, h: u32, rng: &mut impl Rng) -> Self {
        let angle: f32 = rng.random_range(0.0..std::f32::consts::TAU);
        let normal = [angle.cos(), angle.sin()];
        // The edge passes somewhere through the middle 60% of the picture.
        let (px, py) = (
            w as f32 * rng.random_range(0.2..0.8),
            h as f32 * rng.random_range(0.2..0.8),
        );
        let short = w.min(h) as f32;
        Shadow {
            normal,
            edge: px * normal[0] + py * normal[1],
            depth: rng.random_range(0.45..0.75),
            penumbra: short * rng.random_range(0.02..0.08),
        }
    }

    fn light(&self, x: f32, y: f32) -> f32 {
        let d = x * self.normal[0] + y * self.normal[1] - self.edge;
        let t = (d / self.penumbra + 0.5).clamp(0.0, 1.0);
        let t = t * t * (3.0 - 2.0 * t);
        1.0 - (1.0 - self.depth) * t
    }
}

/// Coverage of a line `width` wide at distance `d` from its centre, anti-aliased.
fn cover(width: f32, d: f32) -> f32 {
    (width / 2.0 + 0.5 - d).clamp(0.0, 1.0)
}

/// Reflectance under a layer of `colour` (0-255) with coverage `c`: layers absorb, they do not
/// paint over.
fn multiply(reflect: [f32; 3], colour: [f32; 3], c: f32) -> [f32; 3] {
    [0, 1, 2].map(|i| reflect[i] * (1.0 - c + c * colour[i] / 255.0))
}

/// Smooth random texture at several scales (value noise), -1 to 1: paper fibres, plaster.
struct Texture {
    octaves: Vec<(f32, usize, Vec<f32>, f32)>,
}

impl Texture {
    fn new(w: u32, h: u32, rng: &mut impl Rng) -> Self {
        let octaves = [(48.0, 0.45), (12.0, 0.3), (3.0, 0.25)]
            .iter()
            .map(|&(cell, weight)| {
                let gw = (w as f32 / cell) as usize + 2;
                let gh = (h as f32 / cell) as usize + 2;
                let grid = (0..gw * gh).map(|_| rng.random_range(-1.0..1.0)).collect();
                (cell, gw, grid, weight)
            })
            .collect();
        Self { octaves }
    }

    fn at(&self, x: f32, y: f32) -> f32 {
        self.octaves
            .iter()
            .map(|(cell, gw, grid, weight)| {
                let (fx, fy) = (x / cell, y / cell);
                let (x0, y0) = (fx as usize, fy as usize);
                let s = |t: f32| t * t * (3.0 - 2.0 * t);
                let (tx, ty) = (s(fx.fract()), s(fy.fract()));
                let g = |xx: usize, yy: usize| grid[yy * gw + xx];
                let top = g(x0, y0) * (1.0 - tx) + g(x0 + 1, y0) * tx;
                let bottom = g(x0, y0 + 1) * (1.0 - tx) + g(x0 + 1, y0 + 1) * tx;
                weight * (top * (1.0 - ty) + bottom * ty)
            })
            .sum()
    }
}

/// A digit as pen strokes: line segments in a frame where its ink spans `0..width` and
/// `0..height` (pixels, before placing).
#[derive(Debug, Clone)]
struct PenDigit {
    segments: Vec<[f32; 4]>,
    width: f32,
    height: f32,
}

impl PenDigit {
    /// The centre line of MNIST `pixels`, scaled so the 28x28 field is `field` pixels.
    fn new(pixels: &[u8], field: f32) -> Self {
        assert_eq!(pixels.len(), IMAGE_PIXELS, "an MNIST digit is 28x28");
        // Thin at a resolution fine enough for a smooth line, but no finer than needed.
        let res = (field.round() as u32).clamp(IMAGE_SIDE as u32, 196);
        let big = upscaled(pixels, res);
        let n = res as usize;
        let skeleton = pen_path(big.as_raw(), n);
        // Each skeleton cell at the mean of its skeleton neighbours within 2 cells: a smooth
        // line rather than a staircase when scaled up.
        let on = |x: isize, y: isize| {
            x >= 0
                && y >= 0
                && (x as usize) < n
                && (y as usize) < n
                && skeleton[y as usize * n + x as usize]
        };
        let smooth = |x: isize, y: isize| {
            let (mut sx, mut sy, mut k) = (0.0, 0.0, 0.0);
            for dy in -2..=2 {
                for dx in -2..=2 {
                    if on(x + dx, y + dy) {
                        sx += (x + dx) as f32;
                        sy += (y + dy) as f32;
                        k += 1.0;
                    }
                }
            }
            (sx / k + 0.5, sy / k + 0.5)
        };
        let scale = field / res as f32;
        let mut segments = Vec::new();
        for y in 0..n as isize {
            for x in 0..n as isize {
                if !on(x, y) {
                    continue;
                }
                let a = smooth(x, y);
                for (dx, dy) in [(1, 0), (-1, 1), (0, 1), (1, 1)] {
                    if on(x + dx, y + dy) {
                        let b = smooth(x + dx, y + dy);
                        segments.push([a.0 * scale, a.1 * scale, b.0 * scale, b.1 * scale]);
                    }
                }
                let alone = (-1..=1)
                    .flat_map(|dy| (-1..=1).map(move |dx| (dx, dy)))
                    .all(|(dx, dy)| (dx, dy) == (0, 0) || !on(x + dx, y + dy));
                if alone {
                    segments.push([a.0 * scale, a.1 * scale, a.0 * scale, a.1 * scale]);
                }
            }
        }
        let xs = segments.iter().flat_map(|s| [s[0], s[2]]);
        let ys = segments.iter().flat_map(|s| [s[1], s[3]]);
        let (x0, x1) = xs.fold((f32::MAX, f32::MIN), |(a, b), v| (a.min(v), b.max(v)));
        let (y0, y1) = ys.fold((f32::MAX, f32::MIN), |(a, b), v| (a.min(v), b.max(v)));
        for s in &mut segments {
            *s = [s[0] - x0, s[1] - y0, s[2] - x0, s[3] - y0];
        }
        PenDigit {
            segments,
            width: (x1 - x0).max(0.0),
            height: (y1 - y0).max(0.0),
        }
    }

    /// Draws the strokes with their frame's origin at page point `(u, v)` into `ink`.
    fn draw(&self, page: &Page, u: f32, v: f32, ink: &mut [f32]) {
        let (w, h) = (page.width as i64, page.height as i64);
        let r = page.pen / 2.0 + 1.0;
        for s in &self.segments {
            let a = page.to_image(u + s[0], v + s[1]);
            let b = page.to_image(u + s[2], v + s[3]);
            let (x0, x1) = (
                (a.0.min(b.0) - r).floor() as i64,
                (a.0.max(b.0) + r).ceil() as i64,
            );
            let (y0, y1) = (
                (a.1.min(b.1) - r).floor() as i64,
                (a.1.max(b.1) + r).ceil() as i64,
            );
            for y in y0.max(0)..=y1.min(h - 1) {
                for x in x0.max(0)..=x1.min(w - 1) {
                    let d = stroke::segment_distance((x as f32 + 0.5, y as f32 + 0.5), a, b);
                    let c = cover(page.pen, d);
                    let i = (y * w + x) as usize;
                    ink[i] = ink[i].max(c);
                }
            }
        }
    }
}

/// Grey levels (0-255) at which the pen line may be cut from an upscaled MNIST digit, highest
/// first: a high level keeps loops open that MNIST's anti-aliasing greyed over, a low one keeps
/// faint strokes whole.
const PEN_LEVELS: [u8; 5] = [110, 90, 70, 50, 30];

/// Where the writer's pen went in an MNIST digit upscaled to `n` x `n` (`grey`, 0-255): a
/// one-cell-wide skeleton. The digit is cut at the highest of [`PEN_LEVELS`] that does not break
/// it into more pieces than the lowest level does: cut too high, a faint stroke falls apart
/// into dots and dashes, and the picture would show marks the writer never made (read as an
/// extra "1" or a "!"); cut lower than needed, the small loops of an 8 or a 9 fill in.
/// Marks of the scan that are not the writer's ([`without_scan_marks`]) are left out.
fn pen_path(grey: &[u8], n: usize) -> Vec<bool> {
    let mask = pen_mask(grey, n);
    without_scan_marks(stroke::thin(&mask, n, n), &mask, n)
}

/// A piece of a digit's ink apart from the rest, at least this many times as high as it is
/// wide ...
const SCAN_MARK_ASPECT: f32 = 2.5;
/// ... and with strokes under this share of the width of the digit's largest piece, is a mark
/// of the scan: the edge of the box on the form the digit was written in.
const SCAN_MARK_WIDTH: f32 = 0.6;

/// The `skeleton` of `mask` (`n` x `n`, a digit's ink) without the marks of the scan
/// (thinning works within each 8-connected piece, so a piece's skeleton is its own): MNIST keeps, beside some
/// digits, a thin upright line, the edge of the box the writer wrote in. Faint and thin in the
/// MNIST picture, where a person sees through it, it would be drawn with the same pen as the
/// digit, and a person would read it as a 1 (`18113` for `1813`). A piece of a digit drawn apart
/// (a 5's flag, a 4's stem) is as wide as the rest of the digit, and seldom upright and thin.
/// Of MNIST's 10,000 test digits, 10 to 16 lose such a line, by the size they are thinned at
/// (28 to 196 px), every one a line beside the digit in the scan.
fn without_scan_marks(skeleton: Vec<bool>, mask: &[bool], n: usize) -> Vec<bool> {
    let (labels, areas) = stroke::regions(mask, n, n);
    if areas.len() < 2 {
        return skeleton;
    }
    let mut length = vec![0usize; areas.len()];
    let mut bounds = vec![[usize::MAX, usize::MAX, 0, 0]; areas.len()];
    for (i, &label) in labels.iter().enumerate() {
        let Some(r) = (label as usize).checked_sub(1) else {
            continue;
        };
        length[r] += usize::from(skeleton[i]);
        let (x, y) = (i % n, i / n);
        let b = &mut bounds[r];
        *b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
    }
    let width = |r: usize| areas[r] as f32 / length[r].max(1) as f32;
    let largest = (0..areas.len()).max_by_key(|&r| areas[r]).unwrap_or(0);
    let mark: Vec<bool> = (0..areas.len())
        .map(|r| {
            let [x0, y0, x1, y1] = bounds[r];
            let (w, h) = (x1 - x0 + 1, y1 - y0 + 1);
            r != largest
                && h as f32 >= SCAN_MARK_ASPECT * w as f32
                && width(r) < SCAN_MARK_WIDTH * width(largest)
        })
        .collect();
    if !mark.contains(&true) {
        return skeleton;
    }
    skeleton
        .iter()
        .zip(&labels)
        .map(|(&on, &label)| on && !(label > 0 && mark[label as usize - 1]))
        .collect()
}

/// The pen line the photos draw of MNIST `pixels` ([`pen_path`], thinned at `side` x `side`),
/// dark on white on a `side` x `side` square with a pen `width` pixels wide: what a person sees
/// of the written digit, without the page or the light. It lets a person judge whether the line
/// still stands for its digit (`photos blind`, docs/photo-reader-notes.md).
pub fn pen_line_picture(pixels: &[u8], side: u32, width: f32) -> GrayImage {
    let n = side as usize;
    let line = pen_path(upscaled(pixels, side).as_raw(), n);
    let to_line = stroke::squared_distance(&line, n, n);
    GrayImage::from_fn(side, side, |x, y| {
        let d = to_line[y as usize * n + x as usize].sqrt();
        image::Luma([(255.0 * (1.0 - cover(width, d))).round() as u8])
    })
}

/// The ink `pen_path` thins: `grey` cut at the level it chooses.
fn pen_mask(grey: &[u8], n: usize) -> Vec<bool> {
    let cut = |level: u8| -> Vec<bool> { grey.iter().map(|&v| v >= level).collect() };
    let pieces = |mask: &[bool]| stroke::regions(mask, n, n).1.len();
    let lowest = cut(PEN_LEVELS[PEN_LEVELS.len() - 1]);
    let whole = pieces(&lowest);
    PEN_LEVELS
        .iter()
        .map(|&level| cut(level))
        .find(|mask| pieces(mask) <= whole)
        .unwrap_or(lowest)
}

/// Side (pixels) at which [`pen_fidelity`] looks at a digit: 4 times MNIST's.
const FIDELITY_SIDE: u32 = 112;

/// Digits whose pen line stands for less of their ink than this ([`pen_fidelity`]) are not
/// written: 220 of MNIST's 10,000 test digits (2.2%), 148 of them 2s and 6s (`cargo run
/// --release -p mnist-image --example photos fidelity`).
pub const MIN_PEN_FIDELITY: f32 = 0.82;

/// How much of an MNIST digit (28x28 `pixels`) its pen line stands for: the share of its ink
/// (cut as `pen_path` cuts it, at 4 times MNIST's resolution) that lies within the digit's
/// median stroke width of its centre line. The median digit scores 0.95. A digit whose loops are
/// filled in (a blotted 8, a 6 or a 2 written with a broad pen) scores low: its centre
/// line is a single stroke where the loop was, and drawn with a thin pen it is another digit,
/// one no person wrote. The measure never looks at the label. It takes the ink as cut, marks of
/// the scan and all ([`without_scan_marks`]): thin, they lie within reach of their own centre
/// line and hardly move it.
pub fn pen_fidelity(pixels: &[u8]) -> f32 {
    let n = FIDELITY_SIDE as usize;
    let mask = pen_mask(upscaled(pixels, FIDELITY_SIDE).as_raw(), n);
    let skeleton = stroke::thin(&mask, n, n);
    let paper: Vec<bool> = mask.iter().map(|&m| !m).collect();
    let depth = stroke::squared_distance(&paper, n, n);
    // At the centre of a stroke k cells wide, the nearest paper cell is (k + 1) / 2 away.
    let mut widths: Vec<f32> = skeleton
        .iter()
        .zip(&depth)
        .filter(|(&on, _)| on)
        .map(|(_, d2)| 2.0 * d2.sqrt() - 1.0)
        .collect();
    let ink = mask.iter().filter(|&&m| m).count();
    if widths.is_empty() || ink == 0 {
        return 0.0;
    }
    widths.sort_by(f32::total_cmp);
    // Within the pen's half width of the centre line, plus a cell for the cut's ragged edge.
    let reach = widths[widths.len() / 2] / 2.0 + 1.0;
    let to_line = stroke::squared_distance(&skeleton, n, n);
    let covered = mask
        .iter()
        .zip(&to_line)
        .filter(|(&m, &d2)| m && d2 <= reach * reach)
        .count();
    covered as f32 / ink as f32
}

/// MNIST `pixels` enlarged to `side` x `side`, smoothly (CatmullRom), for cutting a pen line.
fn upscaled(pixels: &[u8], side: u32) -> GrayImage {
    let tile = GrayImage::from_raw(IMAGE_SIDE as u32, IMAGE_SIDE as u32, pixels.to_vec())
        .unwrap_or_default();
    imageops::resize(&tile, side, side, FilterType::CatmullRom)
}

/// Index of a random one of the MNIST `digits` in `from` that a pen line can stand for
/// ([`MIN_PEN_FIDELITY`]), counting the ones passed over in `skipped`.
fn pen_writable(
    digits: &[u8],
    from: std::ops::Range<usize>,
    rng: &mut impl Rng,
    skipped: &mut usize,
) -> usize {
    loop {
        let k = rng.random_range(from.clone());
        if pen_fidelity(&digits[k * IMAGE_PIXELS..][..IMAGE_PIXELS]) >= MIN_PEN_FIDELITY {
            return k;
        }
        *skipped += 1;
    }
}

/// Sets the ruling's spacing and offset so that `baseline` (page y) lies on a rule and a digit
/// `height` high fits the way people write on such paper.
fn rule_for(page: &mut Page, height: f32, baseline: f32, rng: &mut impl Rng) {
    match &mut page.ruling {
        Ruling::None => {}
        Ruling::Ruled { spacing, offset } => {
            *spacing = height / rng.random_range(0.6..0.95);
            *offset = baseline + rng.random_range(-0.08..0.05) * height;
        }
        Ruling::Squared { spacing, offset } => {
            *spacing = height / rng.random_range(0.8..1.7);
            *offset = [
                rng.random_range(0.0..*spacing),
                baseline + rng.random_range(-0.08..0.05) * height,
            ];
        }
    }
}

/// A photo drawn but not yet rendered: the page and the pen's ink on it (coverage 0-1 per
/// pixel). [`write_photos`] can render it twice, as it is and without the page's printed lines,
/// to tell what the lines cost from what the pen line does.
struct Drawn {
    page: Page,
    ink: Vec<f32>,
}

impl Drawn {
    /// The page laid on a table when `condition` asks for one ([`Desk::random`]), its edges
    /// clear of the writing.
    fn on_desk_if(mut self, condition: Condition, rng: &mut impl Rng) -> Self {
        if condition != Condition::OnDesk {
            return self;
        }
        let w = self.page.width as usize;
        let mut b = [
            f32::INFINITY,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
        ];
        for (i, _) in self.ink.iter().enumerate().filter(|(_, &c)| c > 0.0) {
            let (u, v) = self
                .page
                .to_page((i % w) as f32 + 0.5, (i / w) as f32 + 0.5);
            b = [b[0].min(u), b[1].min(v), b[2].max(u), b[3].max(v)];
        }
        let writing = (b[0] <= b[2]).then_some(b);
        self.page.desk = Some(Desk::random(&self.page, writing, rng));
        self
    }

    fn render(&self, rng: &mut impl Rng) -> DynamicImage {
        self.page.render(&self.ink, rng)
    }

    /// The same picture without the page's rules, grid and margin line, when it has any: the
    /// same `rng` state renders the same paper, light and noise.
    fn unruled(&self, rng: &mut impl Rng) -> Option<DynamicImage> {
        if matches!(self.page.ruling, Ruling::None) && self.page.margin.is_none() {
            return None;
        }
        let page = Page {
            ruling: Ruling::None,
            margin: None,
            ..self.page.clone()
        };
        Some(page.render(&self.ink, rng))
    }
}

/// A picture of one MNIST digit (`pixels`, 28x28) written under `condition`. The generators
/// below only pick digits a pen line can stand for ([`pen_fidelity`]).
pub fn digit_photo(pixels: &[u8], condition: Condition, rng: &mut impl Rng) -> DynamicImage {
    draw_digit(pixels, condition, rng).render(rng)
}

/// [`digit_photo`] before it is rendered.
fn draw_digit(pixels: &[u8], condition: Condition, rng: &mut impl Rng) -> Drawn {
    let mut page = Page::random(Some(condition), None, rng);
    let short = page.width.min(page.height) as f32;
    let height = short * rng.random_range(0.18..0.6);
    let digit = PenDigit::new(pixels, height * 1.4);
    let scale = if digit.height > 0.0 {
        height / digit.height
    } else {
        1.0
    };
    let digit = if (scale - 1.0).abs() > 0.02 {
        PenDigit::new(pixels, height * 1.4 * scale)
    } else {
        digit
    };
    let margin = 0.12 * height + page.pen;
    let u = rng.random_range(margin..(page.width as f32 - digit.width - margin).max(margin + 1.0));
    let v =
        rng.random_range(margin..(page.height as f32 - digit.height - margin).max(margin + 1.0));
    rule_for(&mut page, digit.height, v + digit.height, rng);
    let mut ink = vec![0.0; (page.width * page.height) as usize];
    digit.draw(&page, u, v, &mut ink);
    Drawn { page, ink }.on_desk_if(condition, rng)
}

/// Size of [`phone_photo`]: 12 megapixels.
pub const PHONE_PHOTO: (u32, u32) = (4000, 3000);

/// A 12-megapixel phone photo ([`PHONE_PHOTO`]) of one of the MNIST `digits` (chosen by
/// `seed`) written under `condition`, and its label: the picture of [`digit_photo`] enlarged
/// the way a camera with more pixels would have taken it (CatmullRom: the pen line 3-12 px
/// wide with soft edges, not blocks).
pub fn phone_photo(
    digits: &[u8],
    labels: &[u8],
    condition: Condition,
    seed: u64,
) -> (DynamicImage, u8) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let k = pen_writable(digits, 0..labels.len(), &mut rng, &mut 0);
    let picture = digit_photo(
        &digits[k * IMAGE_PIXELS..][..IMAGE_PIXELS],
        condition,
        &mut rng,
    );
    let (width, height) = PHONE_PHOTO;
    (
        picture.resize_exact(width, height, FilterType::CatmullRom),
        labels[k],
    )
}

/// A picture of a number of `count` of the MNIST `digits` (chosen by `seed`) written under
/// `condition`, and the number.
pub fn number_photo_of(
    digits: &[u8],
    labels: &[u8],
    condition: Condition,
    count: usize,
    seed: u64,
) -> (DynamicImage, String) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let chosen: Vec<usize> = (0..count)
        .map(|_| pen_writable(digits, 0..labels.len(), &mut rng, &mut 0))
        .collect();
    let images: Vec<&[u8]> = chosen
        .iter()
        .map(|&k| &digits[k * IMAGE_PIXELS..][..IMAGE_PIXELS])
        .collect();
    let number = chosen
        .iter()
        .map(|&k| char::from(b'0' + labels[k]))
        .collect();
    (number_photo(&images, condition, &mut rng), number)
}

/// A picture of the number made of MNIST `digits` written left to right under `condition`.
pub fn number_photo(digits: &[&[u8]], condition: Condition, rng: &mut impl Rng) -> DynamicImage {
    draw_number(digits, condition, rng).render(rng)
}

/// [`number_photo`] before it is rendered.
fn draw_number(digits: &[&[u8]], condition: Condition, rng: &mut impl Rng) -> Drawn {
    let mut page = Page::random(Some(condition), None, rng);
    // Numbers are written across: make the picture wide.
    if page.height > page.width {
        std::mem::swap(&mut page.width, &mut page.height);
        page.slant = page.slant.map(|s| s.fitted(page.width, page.height));
    }
    let (w, h) = (page.width as f32, page.height as f32);
    let n = digits.len() as f32;
    let mut height = (h * rng.random_range(0.15..0.45)).min(0.85 * w / (n * 0.95));
    let sizes: Vec<f32> = digits.iter().map(|_| rng.random_range(0.9..1.1)).collect();
    let spaces: Vec<f32> = digits
        .iter()
        .map(|_| rng.random_range(0.12..0.35))
        .collect();
    // Wide digits (MNIST's zeros are) can make the number longer than planned: shrink it until
    // it fits the page.
    let (pens, gaps) = loop {
        let pens: Vec<PenDigit> = digits
            .iter()
            .zip(&sizes)
            .map(|(d, size)| {
                let s = height * size;
                let first = PenDigit::new(d, s * 1.4);
                if first.height > 0.0 {
                    PenDigit::new(d, s * 1.4 * s / first.height)
                } else {
                    first
                }
            })
            .collect();
        let gaps: Vec<f32> = spaces.iter().map(|g| height * g + page.pen).collect();
        let total = pens.iter().map(|p| p.width).sum::<f32>() + gaps[1..].iter().sum::<f32>();
        if total <= 0.9 * w || height < 12.0 {
            break (pens, gaps);
        }
        height *= 0.9 * w / total;
    };
    let total: f32 = pens.iter().map(|p| p.width).sum::<f32>() + gaps[1..].iter().sum::<f32>();
    let margin = 0.1 * height + page.pen;
    let left = rng.random_range(margin..(w - total - margin).max(margin + 1.0));
    let baseline = rng.random_range(height + margin..(h - margin).max(height + margin + 1.0));
    rule_for(&mut page, height, baseline, rng);
    let mut ink = vec![0.0; (page.width * page.height) as usize];
    let mut x = left;
    for (i, pen) in pens.iter().enumerate() {
        if i > 0 {
            x += gaps[i];
        }
        let drop = rng.random_range(-0.06..0.06) * height;
        pen.draw(&page, x, baseline - pen.height + drop, &mut ink);
        x += pen.width;
    }
    Drawn { page, ink }.on_desk_if(condition, rng)
}

/// A picture with nothing written on it.
pub fn blank_photo(blank: Blank, rng: &mut impl Rng) -> DynamicImage {
    let page = Page::random(None, Some(blank), rng);
    let ink = vec![0.0; (page.width * page.height) as usize];
    page.render(&ink, rng)
}

/// A picture written by [`write_photos`].
#[derive(Debug, Clone, PartialEq)]
pub struct PhotoSample {
    pub file: PathBuf,
    /// The condition's or the blank's name.
    pub condition: &'static str,
    /// The digit or the number as text; `None` for a blank picture, which must be refused.
    pub answer: Option<String>,
    /// The MNIST test digits it was drawn from, by index, in writing order (none for a blank):
    /// what [`original_picture`] shows as they are.
    pub mnist: Vec<usize>,
}

/// What [`write_photos`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct PhotoSet {
    pub samples: Vec<PhotoSample>,
    /// MNIST digits drawn at random but passed over: their pen line does not stand for them
    /// ([`MIN_PEN_FIDELITY`]).
    pub skipped: usize,
}

/// How many pictures [`write_photos`] makes of each condition and of each blank.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    pub digits: usize,
    pub numbers: usize,
    pub blanks: usize,
}

/// Writes, for every [`Condition`], `counts.digits` single-digit and `counts.numbers` number
/// pictures (2-7 digits) made from randomly chosen MNIST `digits` with their `labels`, and
/// `counts.blanks` pictures of every [`Blank`], into `dir`: `NNNNN-CONDITION-digit-L.ext`,
/// `NNNNN-CONDITION-number-DIGITS.ext`, `NNNNN-BLANK.ext`. Each condition has its own random
/// stream (from `seed`), so its pictures do not change when other counts do. Digits a pen line
/// cannot stand for are passed over ([`pen_fidelity`]) and counted. With `unruled`, each
/// picture whose page has printed lines (rules, a grid, a margin line) is also written there,
/// under the same name, without them ([`Drawn::unruled`]): what the reader reads of the same
/// pen lines, paper, light and noise on a page with no lines. The digits come in `hands` equal
/// runs, each written by one hand (a font's drawings, [`super::fonts::font_digits`]), and all
/// the digits of a number come from one run, as one person writes a number; with 1 (MNIST's
/// test files do not say who wrote which digit) they come from anywhere. Panics unless `hands`
/// divides the digits into runs (a caller's mistake, not the data's).
pub fn write_photos(
    dir: &Path,
    unruled: Option<&Path>,
    digits: &[u8],
    labels: &[u8],
    hands: usize,
    counts: Counts,
    seed: u64,
) -> std::io::Result<PhotoSet> {
    assert!(
        hands >= 1 && labels.len() >= hands && labels.len().is_multiple_of(hands),
        "{} digits do not come in {hands} equal runs",
        labels.len()
    );
    let mut samples = Vec::new();
    let mut skipped = 0;
    let mut index = 0;
    let mut save = |image: &DynamicImage, stem: String, encoding: Encoding| {
        let file = dir.join(format!("{index:05}-{stem}.{}", encoding.extension()));
        index += 1;
        std::fs::write(&file, encode(image, encoding)).map(|_| file)
    };
    // Renders `drawn` with `rng`, and, when twins are asked for, its unruled twin from the same
    // `rng` state; `save_twin` writes the twin under the name `save` gave the picture.
    let render = |drawn: Drawn, rng: &mut ChaCha8Rng| {
        let twin = unruled.and_then(|dir| Some((dir, drawn.unruled(&mut rng.clone())?)));
        (drawn.render(rng), twin)
    };
    let save_twin = |twin: Option<(&Path, DynamicImage)>, file: &Path, encoding: Encoding| match (
        twin,
        file.file_name(),
    ) {
        (Some((dir, image)), Some(name)) => {
            std::fs::write(dir.join(name), encode(&image, encoding))
        }
        _ => Ok(()),
    };
    let digit = |k: usize| &digits[k * IMAGE_PIXELS..][..IMAGE_PIXELS];
    for (c, condition) in Condition::ALL.into_iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((c as u64 + 1) << 32));
        for _ in 0..counts.digits {
            let k = pen_writable(digits, 0..labels.len(), &mut rng, &mut skipped);
            let mut page_rng = ChaCha8Rng::seed_from_u64(rng.random());
            let (picture, twin) = render(
                draw_digit(digit(k), condition, &mut page_rng),
                &mut page_rng,
            );
            let encoding = photo_encoding(condition, &mut rng);
            let answer = labels[k].to_string();
            let file = save(
                &picture,
                format!("{}-digit-{answer}", condition.name()),
                encoding,
            )?;
            save_twin(twin, &file, encoding)?;
            samples.push(PhotoSample {
                file,
                condition: condition.name(),
                answer: Some(answer),
                mnist: vec![k],
            });
        }
        for _ in 0..counts.numbers {
            let n = rng.random_range(2..=7);
            let hand = if hands > 1 {
                let run = labels.len() / hands;
                let h = rng.random_range(0..hands);
                h * run..(h + 1) * run
            } else {
                0..labels.len()
            };
            let chosen: Vec<usize> = (0..n)
                .map(|_| pen_writable(digits, hand.clone(), &mut rng, &mut skipped))
                .collect();
            let images: Vec<&[u8]> = chosen.iter().map(|&k| digit(k)).collect();
            let mut page_rng = ChaCha8Rng::seed_from_u64(rng.random());
            let (picture, twin) = render(
                draw_number(&images, condition, &mut page_rng),
                &mut page_rng,
            );
            let encoding = photo_encoding(condition, &mut rng);
            let answer: String = chosen
                .iter()
                .map(|&k| char::from(b'0' + labels[k]))
                .collect();
            let file = save(
                &picture,
                format!("{}-number-{answer}", condition.name()),
                encoding,
            )?;
            save_twin(twin, &file, encoding)?;
            samples.push(PhotoSample {
                file,
                condition: condition.name(),
                answer: Some(answer),
                mnist: chosen,
            });
        }
    }
    for blank in Blank::ALL {
        for (picture, encoding) in blank_photos(seed, blank).take(counts.blanks) {
            let file = save(&picture, blank.name().to_string(), encoding)?;
            samples.push(PhotoSample {
                file,
                condition: blank.name(),
                answer: None,
                mnist: Vec::new(),
            });
        }
    }
    Ok(PhotoSet { samples, skipped })
}

/// The blank pictures of kind `blank` that [`write_photos`] makes from `seed`, in order, each
/// with the encoding it is saved in.
pub fn blank_photos(seed: u64, blank: Blank) -> impl Iterator<Item = (DynamicImage, Encoding)> {
    // Each kind's own stream, by its place in `Blank::ALL` (the order of declaration).
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((blank as u64 + 101) << 32));
    std::iter::from_fn(move || {
        let mut page_rng = ChaCha8Rng::seed_from_u64(rng.random());
        let picture = blank_photo(blank, &mut page_rng);
        Some((picture, Encoding::Jpeg(rng.random_range(75..=92))))
    })
}

/// The MNIST `digits` a photo was drawn from, as they are: dark on white, 56 px high, apart, no
/// noise (`synth::number_picture`). What the models read of it is what they read of the
/// writing itself, so `scripts/photo-accuracy.sh` sets each condition's score beside this
/// reference: the part of a miss that a photo's pen line, paper and light cost, apart from the
/// part that MNIST's own ambiguous digits cost.
pub fn original_picture(digits: &[&[u8]], rng: &mut impl Rng) -> DynamicImage {
    let style = Style {
        digit_side: 56,
        margins: [28; 4],
        paper: [255; 3],
        ink: [0; 3],
        colour: Colour::Grey,
        noise: 0.0,
        shading: 0.0,
        shading_angle: 0.0,
        encoding: Encoding::Png,
    };
    number_picture(digits, &style, rng).0
}

/// Photos are mostly JPEG; the combined condition always is.
fn photo_encoding(condition: Condition, rng: &mut impl Rng) -> Encoding {
    if condition == Condition::Combined || rng.random_bool(0.5) {
        Encoding::Jpeg(rng.random_range(75..=92))
    } else {
        Encoding::Png
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 28x28 "6": a stem 2 pixels wide down the left and a loop at the bottom, hollow (a ring
    /// as wide as the stem) or filled in.
    fn six(filled: bool) -> Vec<u8> {
        (0..IMAGE_PIXELS)
            .map(|i| {
                let (x, y) = ((i % IMAGE_SIDE) as f32 + 0.5, (i / IMAGE_SIDE) as f32 + 0.5);
                let d = ((x - 14.0).powi(2) + (y - 18.0).powi(2)).sqrt();
                let stem = (8.0..10.0).contains(&x) && (4.0..18.0).contains(&y);
                let ring = if filled {
                    d <= 6.0
                } else {
                    (4.0..=6.0).contains(&d)
                };
                if stem || ring {
                    255
                } else {
                    0
                }
            })
            .collect()
    }

    #[test]
    fn a_filled_loop_is_not_what_a_pen_line_stands_for() {
        let hollow = pen_fidelity(&six(false));
        let filled = pen_fidelity(&six(true));
        // 0.98 and 0.27: the filled loop's centre line is one short stroke.
        assert!(hollow >= 0.97, "hollow loop: {hollow}");
        assert!(filled <= 0.3, "filled loop: {filled}");
        assert_eq!(pen_fidelity(&[0; IMAGE_PIXELS]), 0.0);
    }

    /// A 28x28 digit of `strokes`, each `[x0, y0, x1, y1, grey]` a filled box.
    fn boxes(strokes: &[[usize; 5]]) -> Vec<u8> {
        let mut pixels = vec![0u8; IMAGE_PIXELS];
        for &[x0, y0, x1, y1, grey] in strokes {
            for y in y0..=y1 {
                for x in x0..=x1 {
                    pixels[y * IMAGE_SIDE + x] = grey as u8;
                }
            }
        }
        pixels
    }

    /// How many pieces the pen line of `pixels` has, thinned at 112 x 112.
    fn pen_pieces(pixels: &[u8]) -> usize {
        let line = pen_path(upscaled(pixels, 112).as_raw(), 112);
        stroke::regions(&line, 112, 112).1.len()
    }

    #[test]
    fn the_edge_of_the_box_beside_a_digit_is_not_drawn_and_a_flag_apart_is() {
        let one = [12, 4, 14, 23, 255];
        // A "1" and, a few pixels right of it, a thin grey upright line: the form's box.
        assert_eq!(pen_pieces(&boxes(&[one, [20, 6, 20, 18, 170]])), 1);
        // The same line as wide as the stroke is writing, drawn.
        assert_eq!(pen_pieces(&boxes(&[one, [19, 6, 21, 18, 255]])), 2);
        // A flag drawn apart above a stem: flat, so drawn however thin.
        assert_eq!(pen_pieces(&boxes(&[one, [15, 2, 23, 2, 170]])), 2);
        // The "1" alone.
        assert_eq!(pen_pieces(&boxes(&[one])), 1);
    }

    #[test]
    fn a_numbers_digits_come_from_one_hand() {
        // Four copies of one shape, two hands of two digits each.
        let digits = [six(false), six(false), six(false), six(false)].concat();
        let labels = [6, 0, 8, 9];
        let counts = Counts {
            digits: 0,
            numbers: 2,
            blanks: 0,
        };
        let hands_of = |hands: usize| -> Vec<Vec<usize>> {
            let dir = tempfile::tempdir().unwrap();
            let set = write_photos(dir.path(), None, &digits, &labels, hands, counts, 5).unwrap();
            let numbers: Vec<Vec<usize>> = set
                .samples
                .iter()
                .map(|s| s.mnist.iter().map(|k| k / 2).collect())
                .collect();
            assert_eq!(numbers.len(), 2 * Condition::ALL.len());
            numbers
        };
        let by_hand = hands_of(2);
        assert!(by_hand.iter().all(|n| n.iter().all(|&h| h == n[0])));
        assert!(by_hand.iter().any(|n| n[0] == 0) && by_hand.iter().any(|n| n[0] == 1));
        // One hand for all: the two halves mix within a number.
        assert!(hands_of(1).iter().any(|n| n.iter().any(|&h| h != n[0])));
    }

    #[test]
    fn each_photo_names_the_mnist_digits_it_was_drawn_from() {
        // Three copies of one shape under three labels: only the indices tell them apart.
        let digits = [six(false), six(false), six(false)].concat();
        let labels = [6, 0, 8];
        let dir = tempfile::tempdir().unwrap();
        let counts = Counts {
            digits: 1,
            numbers: 1,
            blanks: 1,
        };
        let twins = tempfile::tempdir().unwrap();
        let set = write_photos(
            dir.path(),
            Some(twins.path()),
            &digits,
            &labels,
            1,
            counts,
            3,
        )
        .unwrap();
        assert_eq!(
            set.samples.len(),
            2 * Condition::ALL.len() + Blank::ALL.len()
        );
        // The unruled twins, under the pictures' own names: of every picture with printed
        // lines, and of none without them (out of focus has them or not, by chance).
        for sample in &set.samples {
            let twin = twins.path().join(sample.file.file_name().unwrap());
            let is =
                |conditions: &[Condition]| conditions.iter().any(|c| c.name() == sample.condition);
            if is(&[
                Condition::Ruled,
                Condition::Squared,
                Condition::Margin,
                Condition::Combined,
            ]) {
                assert!(twin.is_file(), "no twin of {}", sample.file.display());
            } else if sample.answer.is_none()
                || is(&[
                    Condition::Pen,
                    Condition::BlueShadow,
                    Condition::UnevenLight,
                    Condition::Pencil,
                ])
            {
                assert!(!twin.exists(), "a twin of {}", sample.file.display());
            }
        }
        for sample in &set.samples {
            let spelled: String = sample
                .mnist
                .iter()
                .map(|&k| char::from(b'0' + labels[k]))
                .collect();
            match &sample.answer {
                Some(answer) => assert_eq!(&spelled, answer, "{}", sample.file.display()),
                None => assert!(sample.mnist.is_empty(), "{}", sample.file.display()),
            }
        }
        // The originals: the digits side by side, black on white, with room around them.
        let one = |n: usize| {
            let tiles = vec![&digits[..IMAGE_PIXELS]; n];
            original_picture(&tiles, &mut ChaCha8Rng::seed_from_u64(1)).to_luma8()
        };
        let (single, three) = (one(1), one(3));
        let ink_span = |p: &GrayImage| {
            let inked: Vec<u32> = (0..p.width())
                .filter(|&x| (0..p.height()).any(|y| p.get_pixel(x, y).0[0] < 128))
                .collect();
            inked.last().unwrap() - inked[0] + 1
        };
        let (span1, span3) = (ink_span(&single), ink_span(&three));
        assert!(
            span3 >= 3 * span1,
            "three digits {span3} px, one {span1} px: side by side"
        );
        for picture in [&single, &three] {
            let border = (0..picture.width()).map(|x| picture.get_pixel(x, 0).0[0]);
            assert!(
                border.into_iter().all(|v| v == 255),
                "paper around the digits"
            );
            assert_eq!(picture.pixels().map(|p| p.0[0]).min(), Some(0), "black ink");
        }
    }

    #[test]
    fn a_faint_stretch_of_stroke_stays_part_of_the_pen_line() {
        // A bar 4 cells thick across a 40x40 grid: grey 220, but 80 in the middle (MNIST's
        // scanner greyed it). Cut at 110, the pen line would be two dashes.
        let grey: Vec<u8> = (0..40 * 40)
            .map(|i| {
                let (x, y) = (i % 40, i / 40);
                match (
                    (18..22).contains(&y),
                    (5..35).contains(&x),
                    (17..23).contains(&x),
                ) {
                    (true, true, true) => 80,
                    (true, true, false) => 220,
                    _ => 0,
                }
            })
            .collect();
        let line = pen_path(&grey, 40);
        assert_eq!(stroke::regions(&line, 40, 40).1.len(), 1);
        assert!((8..32).all(|x| (18..22).any(|y| line[y * 40 + x])));
        // A ring whose hole MNIST's anti-aliasing greyed to 60 is in one piece at 110, and
        // cut there: its loop stays open (cut at 30, the hole would fill and thin to a dot).
        let ring: Vec<u8> = (0..40 * 40)
            .map(|i| {
                let (x, y) = ((i % 40) as f32 - 19.5, (i / 40) as f32 - 19.5);
                match (x * x + y * y).sqrt() {
                    r if r < 6.0 => 60,
                    r if r < 12.0 => 220,
                    _ => 0,
                }
            })
            .collect();
        let line = pen_path(&ring, 40);
        assert_eq!(line, stroke::thin(&cut_at(&ring, 110), 40, 40));
        let row = &line[20 * 40..21 * 40];
        assert!(!row[18..22].contains(&true), "the loop filled in");
        assert!(row[6..14].contains(&true) && row[26..34].contains(&true));
    }

    #[test]
    fn the_pen_line_picture_shows_a_hollow_loop_as_a_loop_and_a_filled_one_as_none() {
        // At 4 times MNIST's side the loop's centre is (56, 72) and its ring 20 px from it: its
        // four sides (the stem ends on the left one).
        let (side, width) = (112, 4.0);
        let sides = [(76, 72), (36, 72), (56, 52), (56, 92)];
        let inked = |p: &GrayImage, (x, y): (u32, u32), under: u8| {
            (x - 2..=x + 2).any(|x| (y - 2..=y + 2).any(|y| p.get_pixel(x, y).0[0] < under))
        };
        let hollow = pen_line_picture(&six(false), side, width);
        let filled = pen_line_picture(&six(true), side, width);
        let at = |p: &GrayImage, x: u32, y: u32| p.get_pixel(x, y).0[0];
        for p in [&hollow, &filled] {
            assert_eq!((p.width(), p.height()), (side, side));
            assert_eq!(at(p, 0, 0), 255, "paper in the corner");
            assert_eq!(at(p, 36, 40), 0, "the stem is drawn");
        }
        assert_eq!(
            at(&hollow, 56, 72),
            255,
            "the hollow loop's middle is paper"
        );
        assert!(
            sides.iter().all(|&probe| inked(&hollow, probe, 1)),
            "the hollow loop is drawn all round"
        );
        // The filled loop's centre line is one short stroke: the loop a person would see in
        // the MNIST digit is gone from the pen line.
        let ring_ink = sides
            .iter()
            .filter(|&&probe| inked(&filled, probe, 128))
            .count();
        assert!(
            ring_ink <= 1,
            "the filled loop drawn as a loop ({ring_ink} of 4 sides)"
        );
        // The pen's width: the ink across the stem adds up to 4 px.
        let across: f32 = (20..52)
            .map(|x| f32::from(255 - at(&hollow, x, 40)) / 255.0)
            .sum();
        assert!((across - width).abs() <= 0.5, "stem {across} px wide");
    }

    #[test]
    fn an_unruled_twin_is_the_same_photo_without_the_printed_lines() {
        let digit = six(false);
        // Whether each condition's page has rules across it and a line down it.
        for (condition, across, down) in [
            (Condition::Ruled, true, false),
            (Condition::Squared, true, true),
            (Condition::Margin, true, true),
            (Condition::Pen, false, false),
        ] {
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            let drawn = draw_number(&[&digit, &digit], condition, &mut rng);
            let twin = drawn.unruled(&mut rng.clone());
            let photo = drawn.render(&mut rng).to_rgb8();
            let Some(twin) = twin.map(|t| t.to_rgb8()) else {
                assert!(!across && !down, "{condition:?} has lines but no twin");
                continue;
            };
            assert_eq!(photo.dimensions(), twin.dimensions());
            // The same paper, light and noise: the lines can only have darkened a pixel.
            let darker = |x: u32, y: u32| {
                let (p, t) = (photo.get_pixel(x, y).0, twin.get_pixel(x, y).0);
                assert!((0..3).all(|c| p[c] <= t[c]), "{condition:?} ({x}, {y})");
                (0..3).any(|c| p[c] < t[c])
            };
            let (w, h) = photo.dimensions();
            let full_row =
                (0..h).any(|y| (0..w).filter(|&x| darker(x, y)).count() as u32 >= w * 9 / 10);
            let full_column =
                (0..w).any(|x| (0..h).filter(|&y| darker(x, y)).count() as u32 >= h * 9 / 10);
            assert_eq!(
                (full_row, full_column),
                (across, down),
                "{condition:?}: a line across, a line down"
            );
        }
    }

    #[test]
    fn a_page_on_a_desk_shows_the_table_past_its_edges_and_the_writing_on_the_page() {
        let digit = six(false);
        for seed in 0..20 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let drawn = draw_number(&[&digit, &digit], Condition::OnDesk, &mut rng);
            let desk = drawn.page.desk.clone().expect("a table under the page");
            let (w, h) = (drawn.page.width as usize, drawn.page.height as usize);
            // Whether pixel `i` lies on the table, a pixel clear of the page's edge.
            let on_table = |i: usize| {
                let (u, v) = drawn
                    .page
                    .to_page((i % w) as f32 + 0.5, (i / w) as f32 + 0.5);
                desk.past_edges(u, v) > 1.0
            };
            let table: Vec<usize> = (0..w * h).filter(|&i| on_table(i)).collect();
            assert!(!table.is_empty(), "seed {seed}: no table in view");
            // The table is past one to four edges, each at most a quarter of the picture in.
            let shown = desk.edges.iter().filter(|e| e.is_finite()).count();
            assert!((1..=4).contains(&shown), "seed {seed}: {:?}", desk.edges);
            let sides = [w, h, w, h].map(|s| s as f32);
            for (k, (&edge, side)) in desk.edges.iter().zip(sides).enumerate() {
                let inset = if k < 2 { edge } else { side - edge };
                assert!(
                    !edge.is_finite() || inset <= 0.25 * side,
                    "seed {seed}: {edge}"
                );
            }
            // Every stroke is on the page, its margin clear of the edges.
            let ink: Vec<usize> = (0..w * h).filter(|&i| drawn.ink[i] > 0.0).collect();
            assert!(!ink.is_empty());
            assert!(
                ink.iter().all(|&i| !on_table(i)),
                "seed {seed}: ink on the table"
            );
            // What the picture shows there is the table's colour, not paper.
            let photo = drawn.render(&mut rng).to_rgb8();
            let mean = |pixels: &[usize]| {
                let sum: f32 = pixels
                    .iter()
                    .map(|&i| {
                        photo.as_raw()[3 * i..3 * i + 3]
                            .iter()
                            .map(|&c| c as f32)
                            .sum::<f32>()
                    })
                    .sum();
                sum / (3 * pixels.len()) as f32
            };
            let paper: Vec<usize> = (0..w * h)
                .filter(|&i| !on_table(i) && drawn.ink[i] == 0.0)
                .step_by(7)
                .collect();
            assert!(mean(&table) < mean(&paper) - 20.0, "seed {seed}");
        }
    }

    #[test]
    fn a_slanted_page_shows_its_far_side_smaller_and_all_its_writing() {
        let digit = six(false);
        for seed in 0..20 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let drawn = draw_number(&[&digit, &digit, &digit], Condition::Slanted, &mut rng);
            let page = &drawn.page;
            let slant = page.slant.expect("a slanted page");
            let (w, h) = (page.width as f32, page.height as f32);
            // Seen at a slant, the page's rectangle (before it is turned) stays in the picture,
            // so what is written on it does; and the tilt is undone exactly.
            for (dx, dy) in [
                (-w / 2.0, -h / 2.0),
                (w / 2.0, -h / 2.0),
                (-w / 2.0, h / 2.0),
            ] {
                let (x, y) = slant.tilt(dx, dy);
                assert!(
                    x.abs() <= w / 2.0 + 0.01 && y.abs() <= h / 2.0 + 0.01,
                    "seed {seed}: corner ({dx}, {dy}) at ({x}, {y})"
                );
                let (bx, by) = slant.flatten(x, y);
                assert!(
                    (bx - dx).abs() < 0.01 && (by - dy).abs() < 0.01,
                    "seed {seed}"
                );
            }
            let (x, y) = (w * 0.3, h * 0.7);
            let (u, v) = page.to_page(x, y);
            let (bx, by) = page.to_image(u, v);
            assert!(
                (bx - x).abs() < 0.01 && (by - y).abs() < 0.01,
                "seed {seed}"
            );
            // A stretch of page one tenth of the picture across looks longer on the near side
            // than on the far side: by at least 4% along one of the axes for a tilt of at least
            // 5 degrees in any direction.
            let across = |y: f32| {
                let (u, v) = page.to_page(w / 2.0, y);
                let (a, b) = (
                    page.to_image(u - w / 20.0, v),
                    page.to_image(u + w / 20.0, v),
                );
                ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt()
            };
            let (top, bottom) = (across(0.05 * h), across(0.95 * h));
            let (left, right) = {
                let down = |x: f32| {
                    let (u, v) = page.to_page(x, h / 2.0);
                    let (a, b) = (
                        page.to_image(u, v - h / 20.0),
                        page.to_image(u, v + h / 20.0),
                    );
                    ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt()
                };
                (down(0.05 * w), down(0.95 * w))
            };
            let ratio = (top / bottom)
                .max(bottom / top)
                .max(left / right)
                .max(right / left);
            assert!(ratio > 1.04, "seed {seed}: {slant:?}, {ratio}");
            assert!(drawn.ink.iter().any(|&c| c > 0.0));
        }
    }

    fn cut_at(grey: &[u8], level: u8) -> Vec<bool> {
        grey.iter().map(|&v| v >= level).collect()
    }
}
