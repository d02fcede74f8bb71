//! A page photographed at a slant, seen as if from straight above. Tilted, the camera sees the
//! page's far side smaller than its near side: the page's lines, straight still, no longer run
//! parallel but toward a vanishing point, and [`crate::lines`], which looks for one direction
//! per family, finds none of them. So before ink is looked for in earnest, the lines are
//! looked for each at its own angle on a first ink map; where a family's lines turn by
//! [`MIN_SPREAD_DEGREES`] or more across the picture, their vanishing points give the horizon
//! (the vanishing line), and a homography that sends the horizon to infinity makes parallel
//! lines parallel again and evenly spaced ones evenly spaced (an affine rectification; Hartley
//! and Zisserman, *Multiple View Geometry*, 2.7.2). The picture is resampled through it and
//! read as any other, and the boxes found are mapped back.

use crate::ink::{InkMap, Planes};
use rayon::prelude::*;

/// Lines are looked for turned up to this much from either axis, each at its own angle: a
/// slant's lines turn toward their vanishing point, by up to 9.5 degrees at the picture's sides
/// for a phone (a lens 65 degrees across) tilted 15 degrees toward a side, whose vanishing point
/// lies 3 picture widths away; and the page may be turned a few degrees besides.
const MAX_ANGLE_DEGREES: f32 = 16.0;
/// Angles tried per degree: half a step off, a line 1,600 px long drifts 1.7 px either way
/// from its middle...
const STEPS_PER_DEGREE: f32 = 4.0;
/// ... so what lies within this many offsets either side of a peak is counted as its line's.
const PEAK_REACH: usize = 2;
/// A line holds ink over at least this share of the picture's length along it (its inked
/// pixels projected around the peak): far more than any stroke of writing.
const MIN_LENGTH_SHARE: f32 = 0.55;
/// Two lines found are one where they cross inside the picture or lie within this many pixels
/// of each other at both ends.
const SAME_LINE_PX: f32 = 4.0;
/// A family's lines must turn by at least this much across the picture, one way ([`fanned`]),
/// for the picture to be taken as slanted: the lines of an unslanted page, each fitted at its
/// own angle, differ by up to 0.8 degrees where they are blurred 5-8 px wide, but this way and
/// that; and the lines of a slant this small drift from parallel by under 1.7 px per 100 px,
/// which [`crate::lines`] follows well enough.
const MIN_SPREAD_DEGREES: f32 = 1.0;
/// ... and there must be at least this many of them: two lines meet at their vanishing point as
/// surely as more, and a ruled page photographed close often shows two or three rules (asked
/// for three, 2 of seed 5's 40 slanted digits and 2 of its 80 slanted numbers were not seen from
/// above, and misread).
const MIN_LINES: usize = 2;
/// At most this many inked pixels are projected (a regular sample of them).
const MAX_SAMPLE: usize = 20_000;

/// A line found at its own angle: `vertical` near the y axis, else near the x axis; its angle
/// from that axis and its offset across (as `crate::lines` measures it: `y cos - x sin` for a
/// line near the x axis, `x cos - y sin` near the y axis), in pixels of the map.
#[derive(Debug, Clone, Copy, PartialEq)]
struct FoundLine {
    vertical: bool,
    angle: f32,
    offset: f32,
}

impl FoundLine {
    /// The line's homogeneous coordinates in the centred, normalised frame of `frame`.
    fn homogeneous(&self, frame: &Frame) -> [f64; 3] {
        let (s, c) = (self.angle as f64).sin_cos();
        let (cx, cy, half) = (frame.cx, frame.cy, frame.half);
        let o = self.offset as f64;
        if self.vertical {
            [c, -s, (c * cx - s * cy - o) / half]
        } else {
            [-s, c, (-s * cx + c * cy - o) / half]
        }
    }

    /// Where the line crosses the picture's first and last row (near vertical) or column.
    fn ends(&self, length: f32) -> (f32, f32) {
        let (s, c) = self.angle.sin_cos();
        // Near the x axis: y = (offset + x sin) / cos, at x = 0 and x = length.
        ((self.offset) / c, (self.offset + length * s) / c)
    }
}

/// The centred, normalised frame of a picture: `(x - cx) / half`.
#[derive(Debug, Clone, Copy)]
struct Frame {
    cx: f64,
    cy: f64,
    half: f64,
}

impl Frame {
    fn of(width: usize, height: usize) -> Self {
        Self {
            cx: width as f64 / 2.0,
            cy: height as f64 / 2.0,
            half: width.max(height) as f64 / 2.0,
        }
    }
}

/// A rectification: a picture seen from above, in a view of the same size.
#[derive(Debug, Clone)]
pub(crate) struct Rectification {
    width: usize,
    height: usize,
    /// The homography from a view pixel `(x, y, 1)` back to the picture's.
    back: [f64; 9],
}

impl Rectification {
    /// The rectification of the picture whose first ink map is `map`, when its page's lines
    /// show it photographed at a slant: at least [`MIN_LINES`] lines of one family turning by
    /// [`MIN_SPREAD_DEGREES`] or more, and a horizon no nearer than [`MIN_HORIZON`].
    pub fn find(map: &InkMap) -> Option<Self> {
        let lines = lines_at_own_angles(map);
        let frame = Frame::of(map.width, map.height);
        let mut slanted = false;
        let mut points = [None, None];
        for (k, vertical) in [false, true].into_iter().enumerate() {
            let family: Vec<&FoundLine> = lines.iter().filter(|l| l.vertical == vertical).collect();
            if family.len() < MIN_LINES {
                continue;
            }
            let fan = fanned(&family, &frame);
            let family = fan.as_ref().unwrap_or(&family);
            let (low, high) = family.iter().fold((f32::MAX, f32::MIN), |(a, b), l| {
                (a.min(l.angle), b.max(l.angle))
            });
            slanted |= high - low >= MIN_SPREAD_DEGREES.to_radians() && fan.is_some();
            points[k] = Some(common_point(family.iter().map(|l| l.homogeneous(&frame))));
        }
        if !slanted {
            return None;
        }
        // The horizon: through both vanishing points, or, with one family only, through its
        // point square to the direction it lies in (a camera tilted toward it).
        let horizon = match points {
            [Some(a), Some(b)] => cross(a, b),
            [Some(p), None] | [None, Some(p)] if p[2].abs() > 1e-9 => {
                let (x, y) = (p[0] / p[2], p[1] / p[2]);
                [x, y, -(x * x + y * y)]
            }
            _ => return None,
        };
        if horizon[2].abs() < 1e-12 {
            return None;
        }
        let [l1, l2] = [horizon[0] / horizon[2], horizon[1] / horizon[2]];
        if 1.0 / (l1 * l1 + l2 * l2).sqrt() < MIN_HORIZON {
            return None;
        }
        Some(Self::sending_to_infinity(
            l1, l2, map.width, map.height, &frame,
        ))
    }

    /// The homography that sends the line `l1 x + l2 y + 1 = 0` (in `frame`'s normalised
    /// coordinates) to infinity, scaled and shifted so that the whole picture lands centred in
    /// a view of its own size.
    fn sending_to_infinity(l1: f64, l2: f64, width: usize, height: usize, frame: &Frame) -> Self {
        let normalise = [
            1.0 / frame.half,
            0.0,
            -frame.cx / frame.half,
            0.0,
            1.0 / frame.half,
            -frame.cy / frame.half,
            0.0,
            0.0,
            1.0,
        ];
        let project = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, l1, l2, 1.0];
        let h = multiply(&project, &normalise);
        let (w, hh) = (width as f64, height as f64);
        let corners = [(0.0, 0.0), (w, 0.0), (0.0, hh), (w, hh)].map(|(x, y)| apply(&h, x, y));
        let [x0, x1, y0, y1] = bounds(&corners);
        let scale = (w / (x1 - x0)).min(hh / (y1 - y0));
        let place = [
            scale,
            0.0,
            w / 2.0 - scale * (x0 + x1) / 2.0,
            0.0,
            scale,
            hh / 2.0 - scale * (y0 + y1) / 2.0,
            0.0,
            0.0,
            1.0,
        ];
        Self {
            width,
            height,
            back: inverse(&multiply(&place, &h)),
        }
    }

    /// `planes` (the picture's, at any size) seen from above: each pixel sampled (bilinearly)
    /// where it came from; past the picture's edges, the nearest pixel inside it. Rows are
    /// resampled in parallel: every pixel's arithmetic is its own, so the result does not
    /// depend on the threads.
    pub fn warp(&self, planes: &Planes) -> Planes {
        let (w, h) = (planes.width, planes.height);
        let ratio = w as f64 / self.width as f64;
        // Where each pixel of the view samples the picture, found once for all planes.
        let mut taps = vec![Tap::default(); w * h];
        taps.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
            let vy = (y as f64 + 0.5) / ratio;
            for (x, tap) in row.iter_mut().enumerate() {
                let (sx, sy) = apply(&self.back, (x as f64 + 0.5) / ratio, vy);
                let sx = (sx * ratio - 0.5).clamp(0.0, (w - 1) as f64);
                let sy = (sy * ratio - 0.5).clamp(0.0, (h - 1) as f64);
                // Clamped to 0 or more: truncation is the floor.
                let (x0, y0) = (sx as usize, sy as usize);
                *tap = Tap {
                    x0: x0 as u32,
                    y0: y0 as u32,
                    fx: (sx - x0 as f64) as f32,
                    fy: (sy - y0 as f64) as f32,
                };
            }
        });
        let sample = |plane: &Vec<f32>| {
            let mut out = vec![0.0f32; w * h];
            out.par_chunks_mut(w)
                .zip(taps.par_chunks(w))
                .for_each(|(out, taps)| {
                    for (v, t) in out.iter_mut().zip(taps) {
                        let (x0, y0, fx, fy) = (t.x0 as usize, t.y0 as usize, t.fx, t.fy);
                        let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
                        let top = plane[y0 * w + x0] * (1.0 - fx) + plane[y0 * w + x1] * fx;
                        let bottom = plane[y1 * w + x0] * (1.0 - fx) + plane[y1 * w + x1] * fx;
                        *v = top * (1.0 - fy) + bottom * fy;
                    }
                });
            out
        };
        Planes {
            width: w,
            height: h,
            colour: planes.colour.iter().map(sample).collect(),
            alpha: planes.alpha.as_ref().map(sample),
        }
    }

    /// Marks the pixels of `map` (a view, at any size) that lie where the picture was not
    /// ([`InkMap::outside`]), and clears what ink [`Self::warp`] made there.
    pub fn mark_outside(&self, map: &mut InkMap) {
        let w = map.width;
        let ratio = w as f64 / self.width as f64;
        let (width, height) = (self.width as f64, self.height as f64);
        let mut outside = vec![false; map.ink.len()];
        outside
            .par_chunks_mut(w)
            .zip(map.ink.par_chunks_mut(w))
            .enumerate()
            .for_each(|(y, (outside, ink))| {
                let vy = (y as f64 + 0.5) / ratio;
                for (x, (out, v)) in outside.iter_mut().zip(ink).enumerate() {
                    let (sx, sy) = apply(&self.back, (x as f64 + 0.5) / ratio, vy);
                    *out = sx < 0.0 || sy < 0.0 || sx > width || sy > height;
                    if *out {
                        *v = 0.0;
                    }
                }
            });
        map.outside = outside;
    }

    /// Clears the ink of `map` (a view, at any size, [`Self::mark_outside`] marked) within
    /// [`OUT_OF_VIEW_MARGIN`] of where the picture is out of view: at a corner of the view, a
    /// thin wedge of the picture can hold a stub of a rule too short for [`crate::lines`] to
    /// look at, and it was read as a 1 or a 7 on blank slanted pages.
    pub fn clear_near_outside(&self, map: &mut InkMap) {
        if map.outside.is_empty() {
            return;
        }
        let (w, h) = (map.width, map.height);
        let reach = (OUT_OF_VIEW_MARGIN * w.max(h) as f32).ceil() as usize;
        // Within `reach` in chessboard distance of a pixel out of view: the square around the
        // pixel holds one. Along each row first, then down each column over those.
        let mut near = vec![false; w * h];
        near.par_chunks_mut(w)
            .zip(map.outside.par_chunks(w))
            .for_each(|(near, outside)| {
                let mut last = None;
                for (x, &out) in outside.iter().enumerate() {
                    if out {
                        last = Some(x);
                    }
                    near[x] = last.is_some_and(|l| x - l <= reach);
                }
                let mut next = None;
                for (x, &out) in outside.iter().enumerate().rev() {
                    if out {
                        next = Some(x);
                    }
                    near[x] |= next.is_some_and(|n| n - x <= reach);
                }
            });
        // How many rows above each have a pixel near one out of view, column by column.
        let mut above = vec![0u32; w * (h + 1)];
        for y in 0..h {
            let (done, next) = above.split_at_mut((y + 1) * w);
            for ((count, &before), &near) in next[..w]
                .iter_mut()
                .zip(&done[y * w..])
                .zip(&near[y * w..(y + 1) * w])
            {
                *count = before + near as u32;
            }
        }
        map.ink.par_chunks_mut(w).enumerate().for_each(|(y, ink)| {
            let (first, last) = (y.saturating_sub(reach), (y + reach + 1).min(h));
            let (top, bottom) = (&above[first * w..], &above[last * w..]);
            for ((v, t), b) in ink.iter_mut().zip(top).zip(bottom) {
                if b > t {
                    *v = 0.0;
                }
            }
        });
    }

    /// Where point `(x, y)` of the view (in pixels of the size the rectification was found
    /// at) lies in the picture.
    pub fn to_picture(&self, x: f64, y: f64) -> (f64, f64) {
        apply(&self.back, x, y)
    }

    /// Where point `(x, y)` of the picture lies in the view.
    #[cfg(test)]
    fn to_view(&self, x: f64, y: f64) -> (f64, f64) {
        apply(&inverse(&self.back), x, y)
    }
}

/// Ink this near (a share of the view's longer side) to where the picture is out of view is
/// cleared ([`Rectification::clear_near_outside`]).
const OUT_OF_VIEW_MARGIN: f32 = 0.02;

/// Below this many half-sides of the picture from its centre, a horizon is not believed: a
/// camera tilted so far (over about 25 degrees) is not a photo of a page to be read, and a
/// horizon so near comes rather from a line mistaken for the page's.
const MIN_HORIZON: f64 = 3.0;

/// The least and greatest x, then y, of `points`.
pub(crate) fn bounds(points: &[(f64, f64)]) -> [f64; 4] {
    points.iter().fold(
        [f64::MAX, f64::MIN, f64::MAX, f64::MIN],
        |[x0, x1, y0, y1], &(x, y)| [x0.min(x), x1.max(x), y0.min(y), y1.max(y)],
    )
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// The 3x3 matrix product `a b` (row-major).
fn multiply(a: &[f64; 9], b: &[f64; 9]) -> [f64; 9] {
    std::array::from_fn(|k| {
        let (i, j) = (k / 3, k % 3);
        (0..3).map(|n| a[3 * i + n] * b[3 * n + j]).sum()
    })
}

/// `m`'s inverse (its adjugate over its determinant).
fn inverse(m: &[f64; 9]) -> [f64; 9] {
    let cofactor = |r0: usize, r1: usize, c0: usize, c1: usize| {
        m[3 * r0 + c0] * m[3 * r1 + c1] - m[3 * r0 + c1] * m[3 * r1 + c0]
    };
    let adj = [
        cofactor(1, 2, 1, 2),
        -cofactor(0, 2, 1, 2),
        cofactor(0, 1, 1, 2),
        -cofactor(1, 2, 0, 2),
        cofactor(0, 2, 0, 2),
        -cofactor(0, 1, 0, 2),
        cofactor(1, 2, 0, 1),
        -cofactor(0, 2, 0, 1),
        cofactor(0, 1, 0, 1),
    ];
    let det = m[0] * adj[0] + m[1] * adj[3] + m[2] * adj[6];
    adj.map(|v| v / det)
}

/// Point `(x, y)` through homography `m`.
/// Where a pixel of a view samples the picture: the pixel up and left of the point, and the
/// weights of the ones right of and below it.
#[derive(Clone, Copy, Default)]
struct Tap {
    x0: u32,
    y0: u32,
    fx: f32,
    fy: f32,
}

fn apply(m: &[f64; 9], x: f64, y: f64) -> (f64, f64) {
    let w = m[6] * x + m[7] * y + m[8];
    (
        (m[0] * x + m[1] * y + m[2]) / w,
        (m[3] * x + m[4] * y + m[5]) / w,
    )
}

/// `family`'s lines that turn one way across the picture, as lines toward one point outside it
/// do (within [`TURN_TOLERANCE_DEGREES`]), when all but at most one in [`STRAY_EVERY`] of them
/// do; `None` otherwise. The lines of an unslanted page found at their own angles, blurred 5-8
/// px wide, differ by up to 0.8 degrees, but this way and that. A line fitted astray (a faint
/// margin line beside a grid's column, pulled a degree off by it) is left out of the fan
/// rather than taken for a page that is not slanted.
fn fanned<'a>(family: &[&'a FoundLine], frame: &Frame) -> Option<Vec<&'a FoundLine>> {
    let mut by_place: Vec<(f64, &FoundLine)> = family
        .iter()
        .map(|&l| {
            // Where the line passes the picture's centre, across.
            let h = l.homogeneous(frame);
            let n = (h[0] * h[0] + h[1] * h[1]).sqrt();
            (-h[2] / n, l)
        })
        .collect();
    by_place.sort_by(|a, b| a.0.total_cmp(&b.0));
    let tolerance = TURN_TOLERANCE_DEGREES.to_radians();
    // The longest run of lines, in place order, each turned one way from the one before: the
    // longest such chain ending at each line, and the line before it there.
    let longest = |sign: f32| {
        let n = by_place.len();
        let (mut length, mut before) = (vec![1usize; n], vec![None; n]);
        for i in 0..n {
            for j in 0..i {
                let turn = sign * (by_place[i].1.angle - by_place[j].1.angle);
                if turn >= -tolerance && length[j] + 1 > length[i] {
                    (length[i], before[i]) = (length[j] + 1, Some(j));
                }
            }
        }
        let mut at = (0..n).max_by_key(|&i| (length[i], std::cmp::Reverse(i)));
        let mut chain = Vec::new();
        while let Some(i) = at {
            chain.push(by_place[i].1);
            at = before[i];
        }
        chain.reverse();
        chain
    };
    let (up, down) = (longest(1.0), longest(-1.0));
    let fan = if up.len() >= down.len() { up } else { down };
    // In the family's own order, which the vanishing point is summed in.
    let kept: Vec<&FoundLine> = family
        .iter()
        .copied()
        .filter(|l| fan.iter().any(|f| std::ptr::eq(*f, *l)))
        .collect();
    (family.len() - kept.len() <= family.len() / STRAY_EVERY).then_some(kept)
}

/// At most one line in this many may turn against the rest of its family in [`fanned`].
const STRAY_EVERY: usize = 10;

/// How far a line may turn back against the others in [`fanned`].
const TURN_TOLERANCE_DEGREES: f32 = 0.15;

/// The point nearest to lying on every one of `lines` (homogeneous, each scaled so its normal
/// is a unit vector): the eigenvector of the least eigenvalue of their scatter matrix, which is
/// a point at infinity (its third coordinate 0) where they are parallel.
fn common_point(lines: impl Iterator<Item = [f64; 3]>) -> [f64; 3] {
    let mut m = [[0.0f64; 3]; 3];
    for l in lines {
        let n = (l[0] * l[0] + l[1] * l[1]).sqrt();
        let l = l.map(|v| v / n);
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] += l[i] * l[j];
            }
        }
    }
    least_eigenvector(m)
}

/// The unit eigenvector of symmetric `m`'s least eigenvalue (cyclic Jacobi rotations).
fn least_eigenvector(mut m: [[f64; 3]; 3]) -> [f64; 3] {
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for _ in 0..50 {
        let off = m[0][1].abs() + m[0][2].abs() + m[1][2].abs();
        if off < 1e-15 {
            break;
        }
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            if m[p][q].abs() < 1e-300 {
                continue;
            }
            let theta = (m[q][q] - m[p][p]) / (2.0 * m[p][q]);
            let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
            let t = if theta == 0.0 { 1.0 } else { t };
            let c = 1.0 / (t * t + 1.0).sqrt();
            let s = t * c;
            // m = J^T m J, with J the rotation by (c, s) in the (p, q) plane; v = v J.
            for row in &mut m {
                let (a, b) = (row[p], row[q]);
                row[p] = c * a - s * b;
                row[q] = s * a + c * b;
            }
            let (row_p, row_q) = (m[p], m[q]);
            m[p] = std::array::from_fn(|k| c * row_p[k] - s * row_q[k]);
            m[q] = std::array::from_fn(|k| s * row_p[k] + c * row_q[k]);
            for row in &mut v {
                let (vp, vq) = (row[p], row[q]);
                row[p] = c * vp - s * vq;
                row[q] = s * vp + c * vq;
            }
        }
    }
    let least = (0..3)
        .min_by(|&a, &b| m[a][a].total_cmp(&m[b][b]))
        .unwrap_or(0);
    [v[0][least], v[1][least], v[2][least]]
}

/// The long straight lines of `map`, each at its own angle within [`MAX_ANGLE_DEGREES`] of an
/// axis: for each angle tried, the ink is projected across it, and offsets around which
/// [`PEAK_REACH`] bins hold [`MIN_LENGTH_SHARE`] of the picture's length are lines; the same
/// line seen at neighbouring angles is taken once, where it holds most, then fitted to its
/// pixels and kept if it runs unbroken enough.
fn lines_at_own_angles(map: &InkMap) -> Vec<FoundLine> {
    let inked: Vec<(f32, f32)> = (0..map.height)
        .flat_map(|y| (0..map.width).map(move |x| (x, y)))
        .filter(|&(x, y)| map.at(x, y) > 0.0)
        .map(|(x, y)| (x as f32 + 0.5, y as f32 + 0.5))
        .collect();
    // Too little ink for a family of lines across the picture: no need to look.
    let shortest = map.width.min(map.height) as f32;
    if (inked.len() as f32) < MIN_LINES as f32 * MIN_LENGTH_SHARE * MIN_COVERAGE * shortest {
        return Vec::new();
    }
    let every = inked.len().div_ceil(MAX_SAMPLE).max(1);
    let sample: Vec<(f32, f32)> = inked.iter().step_by(every).copied().collect();
    let steps = (MAX_ANGLE_DEGREES * STEPS_PER_DEGREE) as i32;
    let mut found = Vec::new();
    for vertical in [false, true] {
        let (length, across) = if vertical {
            (map.height, map.width)
        } else {
            (map.width, map.height)
        };
        let need = MIN_LENGTH_SHARE * length as f32 / every as f32;
        let reach = (length as f32 * (MAX_ANGLE_DEGREES.to_radians().tan())).ceil() as i64 + 2;
        let lo = -reach;
        let bins = (across as i64 + 2 * reach + 1) as usize;
        // (ink held, angle, offset) of every peak at every angle; the angles in parallel, their
        // peaks in angle order.
        let at_angles: Vec<Vec<(f32, f32, f32)>> = (-steps..=steps)
            .into_par_iter()
            .map(|k| {
                let angle = (k as f32 / STEPS_PER_DEGREE).to_radians();
                let (s, c) = angle.sin_cos();
                let mut counts = vec![0u32; bins];
                for &(x, y) in &sample {
                    let o = if vertical {
                        x * c - y * s
                    } else {
                        y * c - x * s
                    };
                    let b = (o.round() as i64 - lo).clamp(0, bins as i64 - 1) as usize;
                    counts[b] += 1;
                }
                let held = |b: usize| -> u32 {
                    counts[b.saturating_sub(PEAK_REACH)..(b + PEAK_REACH + 1).min(bins)]
                        .iter()
                        .sum()
                };
                let mut peaks = Vec::new();
                for b in 1..bins - 1 {
                    let h = held(b);
                    if h as f32 >= need && h >= held(b - 1) && h > held(b + 1) {
                        peaks.push((h as f32, angle, (b as i64 + lo) as f32));
                    }
                }
                peaks
            })
            .collect();
        let mut peaks: Vec<(f32, f32, f32)> = at_angles.concat();
        peaks.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut taken: Vec<FoundLine> = Vec::new();
        for (_, angle, offset) in peaks {
            let line = FoundLine {
                vertical,
                angle,
                offset,
            };
            let (a0, a1) = line.ends(length as f32);
            // Two of the page's lines never cross inside the picture.
            let same = taken.iter().any(|t| {
                let (b0, b1) = t.ends(length as f32);
                let crossing = (a0 - b0) * (a1 - b1) <= 0.0;
                crossing || (a0 - b0).abs().max((a1 - b1).abs()) < SAME_LINE_PX
            });
            if !same {
                taken.push(line);
            }
        }
        found.extend(
            taken
                .into_iter()
                .filter_map(|l| l.fitted(&sample))
                .filter(|l| l.covered(map)),
        );
    }
    found
}

/// A line runs through at least this share of the picture's length...
const MIN_INSIDE: f32 = 0.5;
/// ... and holds ink over at least this share of that, as a line of a ruled page's set must
/// (`lines::SET_COVERAGE`).
const MIN_COVERAGE: f32 = 0.75;
/// Inked pixels within this distance of a line found by projection are its own, for the fit.
const FIT_REACH_PX: f32 = 3.0;

impl FoundLine {
    /// The line fitted to the inked pixels near it (their principal axis), twice, each time
    /// from those within [`FIT_REACH_PX`] of the last fit: the projection finds a line to an
    /// eighth of a degree and a pixel, which puts the vanishing point of nearly parallel lines
    /// anywhere; the fit, to a fraction of both. `None` when too few pixels are near.
    fn fitted(self, inked: &[(f32, f32)]) -> Option<FoundLine> {
        let mut line = self;
        for _ in 0..2 {
            let (s, c) = line.angle.sin_cos();
            let near: Vec<(f32, f32)> = inked
                .iter()
                .copied()
                .filter(|&(x, y)| (line.offset_of(x, y, s, c) - line.offset).abs() <= FIT_REACH_PX)
                .collect();
            if near.len() < 10 {
                return None;
            }
            let n = near.len() as f64;
            let (mx, my) = near.iter().fold((0.0, 0.0), |(a, b), &(x, y)| {
                (a + x as f64 / n, b + y as f64 / n)
            });
            let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
            for &(x, y) in &near {
                let (dx, dy) = (x as f64 - mx, y as f64 - my);
                sxx += dx * dx;
                syy += dy * dy;
                sxy += dx * dy;
            }
            // The principal axis's angle from the x axis; a line near the y axis is measured
            // from that.
            let axis = 0.5 * (2.0 * sxy).atan2(sxx - syy);
            let angle = if line.vertical {
                std::f64::consts::FRAC_PI_2 - axis
            } else {
                axis
            };
            let angle = (angle + std::f64::consts::FRAC_PI_2).rem_euclid(std::f64::consts::PI)
                - std::f64::consts::FRAC_PI_2;
            let (s, c) = angle.sin_cos();
            let offset = if line.vertical {
                mx * c - my * s
            } else {
                my * c - mx * s
            };
            line = FoundLine {
                vertical: line.vertical,
                angle: angle as f32,
                offset: offset as f32,
            };
        }
        Some(line)
    }

    /// Whether the line runs through at least [`MIN_INSIDE`] of the picture's length and holds
    /// ink (within a pixel across) over [`MIN_COVERAGE`] of what of it is inside: a line
    /// through a row of digits holds much ink in a few places.
    fn covered(&self, map: &InkMap) -> bool {
        let (length, limit) = if self.vertical {
            (map.height, map.width)
        } else {
            (map.width, map.height)
        };
        let (s, c) = self.angle.sin_cos();
        let (mut inside, mut inked) = (0usize, 0usize);
        for t in 0..length {
            // The line's centre across, at position t (pixel centres at +0.5).
            let across = (self.offset + (t as f32 + 0.5) * s) / c - 0.5;
            let a = across.round() as i64;
            if a < 0 || a >= limit as i64 {
                continue;
            }
            inside += 1;
            let ink = (a - 1..=a + 1)
                .filter(|&k| k >= 0 && k < limit as i64)
                .any(|k| {
                    let (x, y) = if self.vertical {
                        (k as usize, t)
                    } else {
                        (t, k as usize)
                    };
                    map.at(x, y) > 0.0
                });
            inked += usize::from(ink);
        }
        inside as f32 >= MIN_INSIDE * length as f32 && inked as f32 >= MIN_COVERAGE * inside as f32
    }

    /// Pixel `(x, y)`'s offset across lines of this one's family at the angle whose sine and
    /// cosine are `s` and `c`.
    fn offset_of(&self, x: f32, y: f32, s: f32, c: f32) -> f32 {
        if self.vertical {
            x * c - y * s
        } else {
            y * c - x * s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w` x `h` ink map of a squared page's lines, `spacing` apart and 2 px thick, seen
    /// through `to_picture` (page point to picture point), and a stroke drawn on the page.
    fn squared_page(
        w: usize,
        h: usize,
        spacing: f32,
        to_page: impl Fn(f32, f32) -> (f32, f32),
    ) -> InkMap {
        let mut map = InkMap::new(w, h);
        for y in 0..h {
            for x in 0..w {
                let (u, v) = to_page(x as f32 + 0.5, y as f32 + 0.5);
                let near = |p: f32| {
                    let t = p.rem_euclid(spacing);
                    t.min(spacing - t)
                };
                if near(u) < 1.0 || near(v) < 1.0 {
                    map.ink[y * w + x] = 1.0;
                }
            }
        }
        map
    }

    /// Picture to page for a camera tilted over the page's top: rows near the bottom show more
    /// of the page (its far side, smaller), so its columns converge toward the bottom.
    fn tilted(w: usize, h: usize, tilt: f32) -> impl Fn(f32, f32) -> (f32, f32) {
        let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
        move |x, y| {
            let q = 1.0 - tilt * (y - cy);
            ((x - cx) / q + cx, (y - cy) / q + cy)
        }
    }

    #[test]
    fn lines_through_one_point_meet_there_and_parallel_ones_at_infinity() {
        let frame = Frame::of(400, 400);
        let through = |(x, y): (f32, f32), angle: f32| FoundLine {
            vertical: true,
            angle,
            // Offset across as `x cos - y sin`, for the line through (x, y).
            offset: x * angle.cos() - y * angle.sin(),
        };
        // Lines through the point (200, -800) of the picture.
        let point = (200.0f32, -800.0f32);
        let lines: Vec<[f64; 3]> = [100.0f32, 200.0, 300.0, 380.0]
            .iter()
            .map(|&x_bottom| {
                let angle = ((x_bottom - point.0) / (400.0 - point.1)).atan();
                through(point, angle).homogeneous(&frame)
            })
            .collect();
        let p = common_point(lines.into_iter());
        let (x, y) = (p[0] / p[2], p[1] / p[2]);
        // (200, -800) in the frame: centred and over the half side of 200.
        assert!((x - 0.0).abs() < 1e-6 && (y + 5.0).abs() < 1e-6, "{p:?}");
        let parallel = [50.0f32, 150.0, 250.0]
            .map(|x| through((x, 0.0), 0.02).homogeneous(&frame))
            .into_iter();
        let p = common_point(parallel);
        assert!(p[2].abs() < 1e-9, "{p:?}");
    }

    #[test]
    fn a_line_astray_is_left_out_of_its_fan_and_lines_this_way_and_that_make_none() {
        let frame = Frame::of(400, 400);
        // Columns across the picture, each turned 0.4 degrees less than the one left of it.
        let columns = |angles: &[f32]| -> Vec<FoundLine> {
            angles
                .iter()
                .enumerate()
                .map(|(i, &degrees)| FoundLine {
                    vertical: true,
                    angle: degrees.to_radians(),
                    offset: 20.0 + 35.0 * i as f32,
                })
                .collect()
        };
        let fan: Vec<f32> = (0..11).map(|i| 2.0 - 0.4 * i as f32).collect();
        let refs = |lines: &[FoundLine]| -> Vec<*const FoundLine> {
            lines.iter().map(|l| l as *const FoundLine).collect()
        };
        let lines = columns(&fan);
        let all: Vec<&FoundLine> = lines.iter().collect();
        let kept = fanned(&all, &frame).expect("a fan");
        assert_eq!(
            refs(&lines),
            kept.iter().map(|&l| l as *const _).collect::<Vec<_>>()
        );
        // One line fitted a degree astray: the other ten are the fan, in their order.
        let mut astray = fan.clone();
        astray[4] += 1.0;
        let lines = columns(&astray);
        let all: Vec<&FoundLine> = lines.iter().collect();
        let kept = fanned(&all, &frame).expect("a fan with a stray");
        let mut expected = refs(&lines);
        expected.remove(4);
        assert_eq!(
            expected,
            kept.iter().map(|&l| l as *const _).collect::<Vec<_>>()
        );
        // Two of eleven astray are too many, and so are lines turned this way and that.
        astray[7] += 1.0;
        let lines = columns(&astray);
        assert!(fanned(&lines.iter().collect::<Vec<_>>(), &frame).is_none());
        let zigzag: Vec<f32> = (0..11)
            .map(|i| if i % 2 == 0 { 0.4 } else { -0.4 })
            .collect();
        let lines = columns(&zigzag);
        assert!(fanned(&lines.iter().collect::<Vec<_>>(), &frame).is_none());
    }

    #[test]
    fn a_slanted_page_is_seen_from_above_and_a_turned_one_is_left_as_it_is() {
        let (w, h) = (600, 450);
        let slanted = squared_page(w, h, 40.0, tilted(w, h, 0.0006));
        let r = Rectification::find(&slanted).expect("the page is slanted");
        // In the view, the page's columns run parallel and evenly spaced: the picture points of
        // page columns 100, 300 and 500 at the page's top and bottom rows, seen from above.
        let to_picture = |u: f32, v: f32| {
            // Page to picture: the tilt undone (q solved for the picture's y).
            let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
            let y = cy + (v - cy) / (1.0 + 0.0006 * (v - cy));
            let q = 1.0 - 0.0006 * (y - cy);
            ((cx + (u - cx) * q) as f64, y as f64)
        };
        let column = |u: f32| {
            let (x0, y0) = to_picture(u, 20.0);
            let (x1, y1) = to_picture(u, 430.0);
            let (a, b) = (r.to_view(x0, y0), r.to_view(x1, y1));
            ((b.0 - a.0).atan2(b.1 - a.1).to_degrees(), (a.0 + b.0) / 2.0)
        };
        let columns = [100.0, 300.0, 500.0].map(column);
        for (angle, _) in columns {
            assert!(angle.abs() < 0.3, "{columns:?}");
        }
        let (gap_left, gap_right) = (columns[1].1 - columns[0].1, columns[2].1 - columns[1].1);
        assert!((gap_left / gap_right - 1.0).abs() < 0.02, "{columns:?}");
        // Picture to view and back is where it started.
        let (x, y) = r.to_view(123.0, 321.0);
        let (bx, by) = r.to_picture(x, y);
        assert!((bx - 123.0).abs() < 1e-6 && (by - 321.0).abs() < 1e-6);

        let turn = 3.0f32.to_radians();
        let turned = squared_page(w, h, 40.0, |x, y| {
            (
                x * turn.cos() + y * turn.sin(),
                y * turn.cos() - x * turn.sin(),
            )
        });
        assert!(Rectification::find(&turned).is_none());
        assert!(Rectification::find(&InkMap::new(w, h)).is_none());
    }

    #[test]
    fn what_lies_out_of_view_is_marked_and_its_ink_cleared() {
        let (w, h) = (600, 450);
        let r = Rectification::find(&squared_page(w, h, 40.0, tilted(w, h, 0.0006)))
            .expect("the page is slanted");
        // At half size too: the view's pixels whose picture point is past the picture's edge.
        for (vw, vh) in [(w, h), (w / 2, h / 2)] {
            let mut view = InkMap::new(vw, vh);
            view.ink.iter_mut().for_each(|v| *v = 1.0);
            r.mark_outside(&mut view);
            let ratio = vw as f64 / w as f64;
            for (i, &out) in view.outside.iter().enumerate() {
                let (x, y) = ((i % vw) as f64 + 0.5, (i / vw) as f64 + 0.5);
                let (px, py) = r.to_picture(x / ratio, y / ratio);
                let inside = (0.0..=w as f64).contains(&px) && (0.0..=h as f64).contains(&py);
                assert_eq!(out, !inside, "({x}, {y}) -> ({px}, {py})");
                assert_eq!(view.ink[i], if out { 0.0 } else { 1.0 });
            }
            // The tilt narrows the picture's top: the view's top corners are out of view, its
            // centre is not.
            assert!(view.outside[0] && view.outside[vw - 1]);
            assert!(!view.outside[(vh / 2) * vw + vw / 2]);
        }
    }
}
