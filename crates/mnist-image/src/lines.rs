//! The page's own lines, taken out of an ink map: the rules of a notebook, the lines of squared
//! paper, a margin line, the edge of a page on a dark table. What marks them apart from writing
//! is that they are straight and run (almost) across the whole picture, and that ruling comes in
//! evenly spaced sets. Strokes that cross or touch a line are kept where they cross it.
//!
//! Lines are looked for near horizontal and near vertical only (a photo of a page is rarely
//! turned more than [`MAX_TURN_DEGREES`]): for each family, the ink is projected across the
//! candidate directions, the direction where the projection is sharpest is the page's, and the
//! peaks of that projection are the candidate lines. A full Hough transform (imageproc's
//! `detect_lines`) would look at every direction and say nothing about coverage or thickness,
//! which is what decides here.

use crate::ink::{centre_and_noise, percentile, InkMap, Planes};
use rayon::prelude::*;

/// Pages are looked for turned by up to this much either way.
pub const MAX_TURN_DEGREES: f32 = 6.0;
/// Directions tried, per degree.
const STEPS_PER_DEGREE: f32 = 4.0;
/// A line of an evenly spaced set must have ink over this fraction of its length.
const SET_COVERAGE: f32 = 0.75;
/// A line of the set's spacing that the picture's edge cuts (near a corner of a turned page,
/// where it is often in a shadow) needs ink over only this fraction of what of its band is
/// inside: left, its stub passed for a 1 on blank squared pages (3 of the 1,000 of
/// `scripts/photo-accuracy.sh 0 0 100 5` and `... 31`).
const CUT_COVERAGE: f32 = 0.5;
/// A line on its own (a margin, a page edge) must have ink over this fraction of its length:
/// more than any digit's stroke covers of the picture it is in.
const LONE_COVERAGE: f32 = 0.92;
/// ... unless it is this faint ([`InkMap::strength`]: a typical stroke is 1), far fainter than
/// writing, and then [`SET_COVERAGE`] is enough. A red margin line in a picture whose blue ink
/// stands out best in the red channel is a tenth of a stroke's strength there, broken (88% of
/// its length inked, the rest lost to noise and where the rules cross it), and left, a stretch
/// of it was read as a 0 (`tests/regressions/41-02808-combined-number-793.jpg`). Of
/// `scripts/photo-accuracy.sh 0 400 0 SEED`'s photos, it mends 2 of seed 41's 3,600 numbers and
/// changes the reading of 1 number of seed 53's, misread either way, and no reading of the four
/// sets of `0 100 0 SEED` or of the 2,000 blank pages (docs/photo-reader-notes.md).
const FAINT_LINE: f32 = 0.25;
/// Ink this much stronger (on the scale where a typical stroke is 1, uncapped:
/// [`InkMap::strength`]) than a line's own, and at least [`STROKE_ON_LINE`], is a stroke on
/// it: where two printed lines cross, or JPEG rings along one, a line is darker than its median
/// but not a pen's strength.
const STROKE_ABOVE_LINE: f32 = 0.35;
const STROKE_ON_LINE: f32 = 0.8;
/// Where a stroke crosses or touches a line, band pixels at least this share of the stroke's
/// strength are its own; weaker ones are the line's and go. Measured on
/// `scripts/photo-accuracy.sh 0 100 0 SEED` (seeds 5, 11, 23 and 31), keeping the whole band
/// there misreads 139 of the 3,200 numbers; shares of 0.3, 0.4, 0.5 and 0.6, 121, 115, 116 and
/// 121 (docs/photo-reader-notes.md).
const STROKE_SHARE_ON_LINE: f32 = 0.4;
/// ... and, where the stroke touches the line without crossing it, stand this many of the
/// line's own deviations above what the line holds at that offset across its band
/// ([`profile`]). Out of focus, a pen line and a rule are about as strong, and the rule beside
/// the digits written on it passed the share: a bar under each digit, joining them. Measured on
/// `scripts/photo-accuracy.sh 0 100 0 SEED` (seeds 5, 11, 23 and 31): 3,459 of 3,600 numbers
/// right without it, 3,467 with it (out of focus 372 and 379 of 400; 10 numbers mended; 2 lost,
/// each through a digit read at under 60% either way). 2 and 4 deviations read within one number
/// of 3 (measured before crossings were told apart).
const ABOVE_PROFILE_SIGMAS: f32 = 3.0;
/// Ink beside a line no stronger than this share of the line's own is not a stroke leaving it
/// (a faint stroke that crosses a far stronger line cannot be told from it there anyway). A
/// narrow digit written close to a grid line on each side leaves the ringing of JPEG, a tenth
/// to a quarter of the line's strength, all around the line between them; taken for strokes
/// crossing the line, it kept the whole piece of the line between them, which joined them (a
/// squared `0687824` read as `08824`). Of the numbers of docs/photos.md's four sets, seed 41's
/// and seed 59's (9,000), 0.5 and 0.7 read 3 more and 0.3 2 more, none fewer.
const STROKE_LEAVING_SHARE: f32 = 0.5;
/// Ink across a line's band at least this many pixels wider than the line's own width (at
/// half its strength) is a stroke running along beside it.
const STROKE_BESIDE_LINE: usize = 2;
/// Where a picture shows no evenly spaced set of lines, a line is at least this many times as long,
/// across the picture, as it is thick: a rule 0.2 mm thick crosses a 7-mm digit cropped to its ink
/// 35 times over, while a pen stroke across such a crop is 10-20 times as long as thick. Without
/// it, on a small picture cropped close to a digit, a 4's bar or a 7's top that spans it passed for
/// a margin line and was removed (the 42 real photos of docs/photo-reader-notes.md cropped to their
/// ink: 26 read right, 33 with this bound; 20 and 40 read 27 and 32). It is not asked of a ruled or
/// squared page: the blur of a small photo makes its lines 2 px thick however short, and 1 more of
/// 1,000 small cuts of blank pages read as a digit when it was (docs/photo-reader-notes.md).
const LINE_ASPECT: f32 = 30.0;
/// At least this many lines make an evenly spaced set.
const SET_SIZE: usize = 3;
/// A line the picture's edge cuts is looked for while at least this fraction of it is inside,
/// and taken alone while [`LONE_INSIDE`] is.
const MIN_PARTIAL: f32 = 0.05;
const LONE_INSIDE: f32 = 0.2;

/// One family: lines near horizontal (`vertical` false) or near vertical.
#[derive(Debug, Clone, Copy)]
struct Family {
    vertical: bool,
    /// Radians from the axis.
    angle: f32,
}

impl Family {
    /// Offset of pixel `(x, y)` across the family's lines.
    fn offset(&self, x: f32, y: f32) -> f32 {
        let (s, c) = self.angle.sin_cos();
        if self.vertical {
            x * c - y * s
        } else {
            y * c - x * s
        }
    }

    /// Length of the picture along the family's lines, in positions.
    fn positions(&self, map: &InkMap) -> usize {
        if self.vertical {
            map.height
        } else {
            map.width
        }
    }

    /// How many positions of the line at `offset` are inside the picture: all of them but
    /// where a turned page's line leaves the picture through its edge (or, in a view from
    /// above, goes out of view: [`InkMap::outside`]).
    fn inside(&self, map: &InkMap, offset: f32) -> usize {
        let n = self.positions(map);
        let (s, c) = self.angle.sin_cos();
        if !map.outside.is_empty() {
            return (0..n)
                .filter(|&t| self.pixel_turned(map, t, offset, (s, c)).is_some())
                .count();
        }
        let limit = if self.vertical { map.width } else { map.height } as f32;
        // Inside while -0.5 <= (offset + t * s) / c < limit - 0.5.
        let (low, high) = ((-0.5 * c - offset), ((limit - 0.5) * c - offset));
        let (first, last) = if s.abs() < 1e-6 {
            if low <= 0.0 && 0.0 < high {
                (0.0, n as f32)
            } else {
                (0.0, 0.0)
            }
        } else if s > 0.0 {
            (low / s, high / s)
        } else {
            (high / s, low / s)
        };
        let first = first.ceil().clamp(0.0, n as f32);
        let last = last.ceil().clamp(0.0, n as f32);
        (last - first).max(0.0) as usize
    }

    /// Pixel at position `t` along the line at `offset`, if inside the picture.
    fn pixel(&self, map: &InkMap, t: usize, offset: f32) -> Option<(usize, usize)> {
        self.pixel_turned(map, t, offset, self.angle.sin_cos())
    }

    /// [`Self::pixel`] with the sine and cosine of the family's angle given, for loops over
    /// many positions.
    fn pixel_turned(
        &self,
        map: &InkMap,
        t: usize,
        offset: f32,
        (s, c): (f32, f32),
    ) -> Option<(usize, usize)> {
        let across = (offset + t as f32 * s) / c;
        let a = across.round();
        let limit = if self.vertical { map.width } else { map.height };
        if a < 0.0 || a >= limit as f32 {
            return None;
        }
        let (x, y) = if self.vertical {
            (a as usize, t)
        } else {
            (t, a as usize)
        };
        (map.outside.is_empty() || !map.outside[y * map.width + x]).then_some((x, y))
    }
}

/// A line found: its family, the offsets its band covers, and how much of it is inked.
#[derive(Debug, Clone, Copy)]
struct Line {
    family: Family,
    low: f32,
    high: f32,
    coverage: f32,
}

/// Removes the page's lines from `map`, keeping ink where strokes cross them. `planes` are the
/// picture's colour planes `map` was made from, where it has them: a line and a stroke that
/// `map`'s plane shows alike may differ in colour ([`Colours`]). Returns how many lines were
/// removed.
pub fn remove_page_lines(map: &mut InkMap, planes: Option<&Planes>) -> usize {
    let inked: Vec<(f32, f32)> = (0..map.height)
        .flat_map(|y| (0..map.width).map(move |x| (x, y)))
        .filter(|&(x, y)| map.at(x, y) > 0.0)
        .map(|(x, y)| (x as f32, y as f32))
        .collect();
    if inked.is_empty() {
        return 0;
    }
    let families = [false, true].map(|vertical| {
        let length = if vertical { map.height } else { map.width };
        best_direction(&inked, vertical, length)
    });
    let mut found = families.map(|family| lines_of(map, &inked, family, false));
    // A page's ruling shows itself as an evenly spaced set. Without one, what spans the picture
    // may be a stroke of a digit cropped close, and a line must be long for its thickness too.
    if !found.iter().any(|f| f.set) {
        found = families.map(|family| lines_of(map, &inked, family, true));
    }
    let lines: Vec<Line> = found.into_iter().flat_map(|f| f.lines).collect();
    if lines.is_empty() {
        return 0;
    }
    erase(map, &lines, planes);
    lines.len()
}

/// The direction, within [`MAX_TURN_DEGREES`] of the axis, along which the ink's projection is
/// sharpest (the sum of its squared counts is largest): the page's lines, when it has any.
/// Directions are tried [`STEPS_PER_DEGREE`] apart, then, around the best, finely enough that
/// a line drifts by under a quarter of a pixel along the `length` positions of the picture:
/// half a coarse step off, a rule drifts 2 px across a 900-px picture and 9 px across a 12-MP
/// one, and a rule that the picture's edge cuts was taken as wholly inside and left as a 1.
fn best_direction(inked: &[(f32, f32)], vertical: bool, length: usize) -> Family {
    // A sample of the ink is enough to find the direction.
    let every = (inked.len() / 40_000).max(1);
    let sample: Vec<(f32, f32)> = inked.iter().step_by(every).copied().collect();
    let mut step = (1.0 / STEPS_PER_DEGREE).to_radians();
    // After the coarse search, the search goes on around the best direction, a quarter of the
    // step at a time, while half a step drifts a line by more than a quarter of a pixel along
    // the picture (on a small picture, not at all).
    let finest = (0.25 / length.max(1) as f32).atan();
    let refine = step / 2.0 > finest;
    // Bins finer than a pixel tell apart directions that drift a line by less than one, but
    // they also see the pixel grid: along its rows or columns every pixel's centre falls on a
    // whole offset, and the projection looked sharpest there. Each pixel stands for its square,
    // so for fine bins it is projected from a point spread over its square (the same point
    // every time).
    let spread: Vec<(f32, f32)> = if refine {
        sample
            .iter()
            .map(|&(x, y)| {
                let h = (x as u32).wrapping_mul(0x9E37_79B1) ^ (y as u32).wrapping_mul(0x85EB_CA77);
                let h = h ^ (h >> 15);
                let h = h.wrapping_mul(0x2C1B_3C6D);
                let (u, v) = ((h & 0xFFFF) as f32 / 65536.0, (h >> 16) as f32 / 65536.0);
                (x + u - 0.5, y + v - 0.5)
            })
            .collect()
    } else {
        Vec::new()
    };
    // The projection's sharpness with `bins` offsets per pixel.
    let sharpness = |angle: f32, bins: f32| {
        let family = Family { vertical, angle };
        let points = if bins > 1.0 { &spread } else { &sample };
        let offsets: Vec<i64> = points
            .iter()
            .map(|&(x, y)| (family.offset(x, y) * bins).round() as i64)
            .collect();
        let (lo, hi) = (
            offsets.iter().copied().min().unwrap_or(0),
            offsets.iter().copied().max().unwrap_or(0),
        );
        let mut counts = vec![0u32; (hi - lo + 1) as usize];
        for o in offsets {
            counts[(o - lo) as usize] += 1;
        }
        counts.iter().map(|&c| (c as f64).powi(2)).sum::<f64>()
    };
    // The middle of the angles where the projection is sharpest (neighbouring directions may
    // put every pixel in the same bin); the angles are tried in parallel.
    let sharpest = |angles: Vec<f32>, bins: f32| {
        let tried: Vec<f64> = angles.par_iter().map(|&a| sharpness(a, bins)).collect();
        let top = tried.iter().copied().fold(0.0, f64::max);
        let first = tried.iter().position(|&t| t == top).unwrap_or(0);
        let last = tried.iter().rposition(|&t| t == top).unwrap_or(0);
        (angles[first] + angles[last]) / 2.0
    };
    let steps = (MAX_TURN_DEGREES * STEPS_PER_DEGREE) as i32;
    let mut angle = sharpest((-steps..=steps).map(|k| k as f32 * step).collect(), 1.0);
    while step / 2.0 > finest {
        step /= 4.0;
        let around = angle;
        angle = sharpest((-4..=4).map(|k| around + k as f32 * step).collect(), 4.0);
    }
    Family { vertical, angle }
}

/// The lines of `family` in `map`: peaks of the projection that are inked over most of their
/// length and thin, kept if they form an evenly spaced set or are nearly unbroken on their own.
fn lines_of(map: &InkMap, inked: &[(f32, f32)], family: Family, aspect_bound: bool) -> Found {
    let offsets: Vec<i64> = inked
        .iter()
        .map(|&(x, y)| family.offset(x, y).round() as i64)
        .collect();
    let lo = offsets.iter().copied().min().unwrap_or(0);
    let hi = offsets.iter().copied().max().unwrap_or(0);
    // How many inked pixels each offset holds, and how much ink, weighed by its strength.
    let mut counts = vec![0u32; (hi - lo + 1) as usize];
    let mut weights = vec![0.0f32; counts.len()];
    for (&o, &(x, y)) in offsets.iter().zip(inked) {
        counts[(o - lo) as usize] += 1;
        weights[(o - lo) as usize] += map.at(x as usize, y as usize);
    }
    let length = family.positions(map) as f32;
    // Positions inside the picture, per offset; a line cut by the picture's edge (a turned
    // page's rule near a corner) is judged on what of it is inside.
    let inside: Vec<f32> = (0..counts.len())
        .into_par_iter()
        .map(|k| family.inside(map, (lo + k as i64) as f32) as f32)
        .collect();
    let side = map.width.max(map.height) as f32;
    // Thin: a printed line is a few pixels wide however large the picture, and far longer than
    // it is thick ([`LINE_ASPECT`]).
    let mut max_thickness = (0.015 * side).max(5.0);
    if aspect_bound {
        max_thickness = max_thickness.min(length / LINE_ASPECT);
    }
    // What every offset holds anyway (the other family's lines cross them all).
    let mut sorted = counts.clone();
    sorted.sort_unstable();
    let base = sorted[sorted.len() / 2] as f32;
    let holds = |k: usize, fraction: f32| {
        inside[k] >= MIN_PARTIAL * length && counts[k] as f32 - base >= fraction * inside[k]
    };
    // Runs of offsets each holding at least a fifth of a line's worth of ink, and thin. Where
    // writing lies along a line (a number written on a rule) its ink widens the run; the line
    // is then the thin core that holds more, found by raising the bar. A line blurred in a
    // small photo is inked across its whole width at any bar; its core is then where it holds
    // at least half its peak weight above the run's edges ([`RunFinder::core`]).
    let finder = RunFinder {
        holds: &holds,
        weights: &weights,
        max_thickness,
    };
    let mut runs = Vec::new();
    finder.thin_runs(0, counts.len(), 0.2, &mut runs);
    runs.sort_unstable();
    let (mut candidates, mut cut) = (Vec::new(), Vec::new());
    for (start, end) in runs {
        let i = end;
        // Widen by up to two offsets each side that still hold some of the line: its
        // anti-aliased fringe, and the pixels rounding puts beside it when the page is turned.
        let fringe = |k: usize| holds(k, 0.05);
        let mut first = start;
        while first > 0 && start - first < 2 && fringe(first - 1) {
            first -= 1;
        }
        let mut last = i - 1;
        while last + 1 < counts.len() && last + 1 - (i - 1) <= 2 && fringe(last + 1) {
            last += 1;
        }
        let (low, high) = ((lo + first as i64) as f32, (lo + last as i64) as f32);
        let line = Line {
            family,
            low,
            high,
            coverage: coverage(map, family, low, high),
        };
        // How much of the line's centre is inside: a line near the edge of a turned page
        // leaves the picture when its centre does, though the edge of its band may not.
        let inside = inside[(first + last) / 2] / length;
        if line.coverage >= SET_COVERAGE {
            candidates.push((line, inside));
        } else if line.coverage >= CUT_COVERAGE && inside < 1.0 {
            cut.push(line);
        }
    }
    let lines: Vec<Line> = candidates.iter().map(|c| c.0).collect();
    // Lines of a set stand apart, each with at least its own thickness of paper on either side;
    // at half size, squared paper's lines are 2 px thick and 7-8 px apart.
    let thickest = lines
        .iter()
        .map(|l| l.high - l.low + 1.0)
        .fold(0.0, f32::max);
    let spacing = set_spacing(&lines, 2.0 * thickest);
    // A line alone must be nearly unbroken or faint, and mostly inside the picture: a short
    // piece cut by its edge is only ever one of a set.
    let mut found: Vec<(Line, bool)> = candidates
        .into_iter()
        .filter_map(|(l, inside)| {
            let alone = (l.coverage >= LONE_COVERAGE || strength(map, &l) <= FAINT_LINE)
                && inside >= LONE_INSIDE;
            (alone || spacing.is_some_and(|s| s.holds(&l))).then_some((l, alone))
        })
        .collect();
    // The piece of a rule that the picture's edge cuts, where the set's spacing puts one, may be
    // more broken than the set's (fainter near a corner, in a shadow).
    if let Some(spacing) = spacing {
        found.extend(
            cut.into_iter()
                .filter(|l| spacing.holds(l))
                .map(|l| (l, false)),
        );
    }
    Found {
        lines: without_writing_beside_lines(found),
        set: spacing.is_some(),
    }
}

/// `lines` (each with whether it would be a line alone, not only as one of a set) without those
/// that only the set admits and that overlap a line inked over more of its length: where a
/// number is written across a rule, the band of its strokes beside the rule can hold a set's
/// share of ink too, and lie within the set's tolerance of the rule's place. Kept as a second
/// line, it put the strokes along the rule on two lines, whose inks add up, so such a stroke had
/// to be stronger than both to stay: a 3's top bar along a rule was lost, and seed 41's combined
/// `354907` was read as `554907`. Lines that would be lines alone stay, however they overlap: a
/// margin line drawn over a grid line is two lines of two colours.
fn without_writing_beside_lines(lines: Vec<(Line, bool)>) -> Vec<Line> {
    let overlap = |a: &Line, b: &Line| a.low <= b.high && b.low <= a.high;
    lines
        .iter()
        .filter(|(line, alone)| {
            *alone
                || !lines
                    .iter()
                    .any(|(other, _)| overlap(line, other) && other.coverage > line.coverage)
        })
        .map(|&(line, _)| line)
        .collect()
}

/// The lines [`lines_of`] found in one family, and whether they hold an evenly spaced set.
struct Found {
    lines: Vec<Line>,
    set: bool,
}

/// Finds the thin runs of offsets that may be lines ([`lines_of`]).
struct RunFinder<'a> {
    /// Whether offset `k` holds at least `fraction` of a line's worth of ink.
    holds: &'a dyn Fn(usize, f32) -> bool,
    /// The ink each offset holds, weighed by its strength.
    weights: &'a [f32],
    max_thickness: f32,
}

impl RunFinder<'_> {
    /// Adds to `runs` the thin runs within `from..to` of offsets holding at least `fraction`;
    /// where a run is too thick, the thin runs that hold more within it, or else its core.
    fn thin_runs(&self, from: usize, to: usize, fraction: f32, runs: &mut Vec<(usize, usize)>) {
        let mut i = from;
        while i < to {
            if !(self.holds)(i, fraction) {
                i += 1;
                continue;
            }
            let start = i;
            while i < to && (self.holds)(i, fraction) {
                i += 1;
            }
            if (i - start) as f32 <= self.max_thickness {
                runs.push((start, i));
                continue;
            }
            let found = runs.len();
            if fraction < 0.9 {
                self.thin_runs(start, i, fraction * 1.5, runs);
            }
            if runs.len() == found {
                runs.extend(self.core(start, i));
            }
        }
    }

    /// The offsets around the heaviest one of `from..to` that hold at least half its weight
    /// above the run's edges (where writing lies beside the line, the edges hold the writing),
    /// if they are thin: a blurred line peaks at its centre; a bold stroke is as heavy across.
    fn core(&self, from: usize, to: usize) -> Option<(usize, usize)> {
        let run = &self.weights[from..to];
        let peak = (0..run.len()).max_by(|&a, &b| run[a].total_cmp(&run[b]))?;
        let edge = run[0].min(run[run.len() - 1]);
        let half = edge + 0.5 * (run[peak] - edge);
        let first = (0..peak)
            .rev()
            .take_while(|&k| run[k] >= half)
            .last()
            .unwrap_or(peak);
        let last = (peak..run.len())
            .take_while(|&k| run[k] >= half)
            .last()
            .unwrap_or(peak);
        ((last - first + 1) as f32 <= self.max_thickness).then_some((from + first, from + last + 1))
    }
}

/// The gap and one line's centre of an evenly spaced set of lines.
#[derive(Debug, Clone, Copy)]
struct Spacing {
    gap: f32,
    anchor: f32,
}

impl Spacing {
    /// Whether `line` lies a whole number of gaps from the anchor.
    fn holds(&self, line: &Line) -> bool {
        let steps = ((line.low + line.high) / 2.0 - self.anchor) / self.gap;
        (steps - steps.round()).abs() < 0.15
    }
}

/// The evenly spaced set among `lines` (one family, in order across): at least [`SET_SIZE`] of
/// them a whole number of one gap (wider than `min_gap`) apart, a rule hidden or faint here and
/// there. The gap is the one between two neighbours that puts the most lines on the set, so
/// that a margin line or a digit's stroke among the rules does not break it. `None` when no gap
/// does.
fn set_spacing(lines: &[Line], min_gap: f32) -> Option<Spacing> {
    let centres: Vec<f32> = lines.iter().map(|l| (l.low + l.high) / 2.0).collect();
    let mut best: Option<(usize, Spacing)> = None;
    for gap in centres.windows(2).map(|w| w[1] - w[0]) {
        if gap <= min_gap {
            continue;
        }
        for &anchor in &centres {
            let spacing = Spacing { gap, anchor };
            let count = lines.iter().filter(|l| spacing.holds(l)).count();
            if best.is_none_or(|b| count > b.0) {
                best = Some((count, spacing));
            }
        }
    }
    best.filter(|b| b.0 >= SET_SIZE).map(|b| b.1)
}

/// Fraction of the positions along the band `low..=high` of `family` (inside the picture) that
/// hold ink.
fn coverage(map: &InkMap, family: Family, low: f32, high: f32) -> f32 {
    let (mut inside, mut inked) = (0, 0);
    for t in 0..family.positions(map) {
        let mut any_inside = false;
        let mut any_ink = false;
        let mut o = low;
        while o <= high {
            if let Some((x, y)) = family.pixel(map, t, o) {
                any_inside = true;
                any_ink |= map.at(x, y) > 0.0;
            }
            o += 1.0;
        }
        inside += usize::from(any_inside);
        inked += usize::from(any_ink);
    }
    if inside == 0 {
        0.0
    } else {
        inked as f32 / inside as f32
    }
}

/// Clears the bands of `lines`, except where a stroke leaves a band on either side (it crosses
/// or touches the line there): those positions, and a band's width around them, keep the ink
/// strong enough to be that stroke ([`STROKE_SHARE_ON_LINE`]), and where it only touches the
/// line, stronger than the line alone ([`ABOVE_PROFILE_SIGMAS`]), so the stroke stays whole and
/// the line's own ink beside it goes. Ink of the writing's colour where the line's is another
/// stays too ([`Colours`], from `planes`). Each line is judged in a pass of its own
/// ([`LinePass`]); a pixel goes if some pass clears it and none keeps it.
fn erase(map: &mut InkMap, lines: &[Line], planes: Option<&Planes>) {
    let w = map.width;
    // How many lines' bands, with their fringes, hold each pixel: ink beside another line (its
    // anti-aliased or JPEG-blurred edge, where the rules of squared paper cross) is that line's,
    // not a stroke leaving. (Counted per pixel, so that a line's own fringe can be told from
    // another's.)
    let mut on_lines = vec![0u8; w * map.height];
    for line in lines {
        for_band(map, &line.fringed(), |_, _, x, y| {
            on_lines[y * w + x] = on_lines[y * w + x].saturating_add(1)
        });
    }
    let colours = Colours::new(map, planes, &on_lines);
    let mut verdicts = vec![0u8; w * map.height];
    for line in lines {
        LinePass::new(map, line, &on_lines, colours.as_ref()).judge(map, &mut verdicts);
    }
    map.on_lines = on_lines.iter().map(|&n| n > 0).collect();
    for (v, &verdict) in map.ink.iter_mut().zip(&verdicts) {
        if verdict == CLEARED {
            *v = 0.0;
        }
    }
}

/// A line's pass marks a band pixel as the line's ink ([`CLEARED`]) or as a stroke running on
/// through a crossing ([`KEPT`]); a pixel marked kept by any pass stays, whatever another pass
/// makes of it.
const CLEARED: u8 = 1;
const KEPT: u8 = 2;

impl Line {
    /// The line's band with its fringe: two pixels each side.
    fn fringed(&self) -> Line {
        Line {
            low: self.low - 2.0,
            high: self.high + 2.0,
            ..*self
        }
    }
}

/// What one line's pass knows of its band before it judges each pixel: where strokes leave the
/// band or run along it, and how strong and wide the line's own ink is.
struct LinePass<'a> {
    line: &'a Line,
    /// Its band with its fringe, and the pixels held by each line's ([`erase`]).
    own: Line,
    on_lines: &'a [u8],
    /// The band and a pixel of fringe each side: what the pass judges.
    wide: Line,
    /// The line's own strength ([`strength`]), and what stands well above it: a pen is usually
    /// darker than the printed line, so ink that strong is a stroke along it (the base of a 2
    /// written on the rule) ...
    own_strength: f32,
    stronger: f32,
    /// ... or, where two lines cross and their inks add up, stronger than both.
    stronger_than_two: f32,
    /// Across `wide`, the line's own strength at each offset ([`profile`]).
    profile: Vec<(f32, f32)>,
    /// At each position along the line, the strength of a stroke leaving the band within reach
    /// (0 where none does), and whether strokes leave it on both sides there (one crosses it).
    stroke_near: Vec<f32>,
    crossing: Vec<bool>,
    /// Positions where the ink across the band is wider than the line's own: a stroke along it.
    alongside: Vec<bool>,
    /// Position by offset: a stroke that runs on through a crossing line.
    runs_through: Vec<bool>,
    /// The colour rule for this line, where a channel tells its ink from the writing's, and
    /// how much further than [`Colours::reach`] the paper is looked for: past the line.
    by_colour: Option<(&'a Colours<'a>, usize)>,
    colour_reach: usize,
}

impl<'a> LinePass<'a> {
    fn new(
        map: &InkMap,
        line: &'a Line,
        on_lines: &'a [u8],
        colours: Option<&'a Colours<'a>>,
    ) -> Self {
        let thickness = (line.high - line.low + 1.0).ceil() as usize;
        let wide = Line {
            low: line.low - 1.0,
            high: line.high + 1.0,
            ..*line
        };
        let own_strength = strength(map, line);
        let mut pass = LinePass {
            line,
            own: line.fringed(),
            on_lines,
            wide,
            own_strength,
            stronger: (own_strength + STROKE_ABOVE_LINE).max(STROKE_ON_LINE),
            stronger_than_two: (2.0 * own_strength + STROKE_ABOVE_LINE).max(STROKE_ON_LINE),
            profile: profile(map, &wide),
            stroke_near: Vec::new(),
            crossing: Vec::new(),
            alongside: Vec::new(),
            runs_through: Vec::new(),
            by_colour: None,
            colour_reach: thickness + 1,
        };
        (pass.stroke_near, pass.crossing) = pass.strokes_leaving(map, thickness);
        (pass.alongside, pass.runs_through) = pass.strokes_along(map);
        // Where a channel shows the writing and hardly this line, a band pixel about as dark
        // there as the writing is stroke, however alike the map's plane shows the two (a grey
        // pen down a blue grid line, blue ink across a red margin line).
        pass.by_colour = colours.and_then(|c| {
            let on_other_line = |x, y| pass.on_other_line(map, x, y);
            c.channel_for(
                map,
                line,
                pass.colour_reach,
                on_other_line,
                0.5 * own_strength,
                pass.stronger,
            )
            .map(|channel| (c, channel))
        });
        pass
    }

    /// Whether pixel `(x, y)` lies on another line's band (with its fringe) than this one's.
    fn on_other_line(&self, map: &InkMap, x: usize, y: usize) -> bool {
        let o = self.line.family.offset(x as f32, y as f32);
        let mine = u8::from(o >= self.own.low - 0.5 && o <= self.own.high + 0.5);
        self.on_lines[y * map.width + x] > mine
    }

    /// For each position along the line: the strength of a stroke that leaves the band within a
    /// band's width of it, and whether strokes leave on both sides there (it crosses the line).
    /// Around a stroke that leaves, the band keeps what is strong enough to be that stroke where
    /// it crosses or touches the line (a faint pencil line no stronger than the rule keeps the
    /// whole band there); the rule's own ink beside it goes, or it would hang off the digit as a
    /// bar (a 1 read as an I, a 3 joined to the / after it).
    fn strokes_leaving(&self, map: &InkMap, thickness: usize) -> (Vec<f32>, Vec<bool>) {
        let (line, n) = (self.line, self.line.family.positions(map));
        let floor = STROKE_LEAVING_SHARE * self.own_strength;
        // The strongest ink at offset `o` within a position of `t`, not on another line; 0 where
        // there is none (the map's strength is its ink uncapped, so both are 0 together).
        let ink_near = |t: usize, o: f32| {
            (t.saturating_sub(1)..(t + 2).min(n))
                .filter_map(|t| line.family.pixel(map, t, o))
                .filter(|&(x, y)| !self.on_other_line(map, x, y))
                .map(|(x, y)| map.strength_at(x, y))
                .filter(|&s| s > floor)
                .fold(0.0f32, f32::max)
        };
        // A stroke leaves the band at position t when there is ink 2, 3 and 4 pixels beyond it
        // on one side (not on another line): further than a line's own fringe or the ringing
        // of JPEG around it reaches. Its strength there is its strongest pixel 3 and 4 pixels
        // out, clear of the fringe; 0 where no stroke leaves.
        // (Also whether there is ink 2 pixels beyond it on that side at all: a stroke that ends
        // just past the line still crosses it.)
        let leaving: Vec<[(f32, bool); 2]> = (0..n)
            .map(|t| {
                let side = |edge: f32, dir: f32| {
                    let out = |k: f32| ink_near(t, edge + dir * k);
                    if out(2.0) == 0.0 {
                        return (0.0, false);
                    }
                    let (three, four) = (out(3.0), out(4.0));
                    if three > 0.0 && four > 0.0 {
                        (three.max(four), true)
                    } else {
                        (0.0, true)
                    }
                };
                [side(line.low, -1.0), side(line.high, 1.0)]
            })
            .collect();
        // Ink beyond the line on both sides within that reach is a stroke crossing it.
        let reach = thickness.div_ceil(2) + 2;
        (0..n)
            .map(|t| {
                let near = &leaving[t.saturating_sub(reach)..(t + reach + 1).min(n)];
                let strongest = near
                    .iter()
                    .flatten()
                    .fold(0.0f32, |a, &(strength, _)| a.max(strength));
                let beyond = |side: usize| near.iter().any(|sides| sides[side].1);
                (strongest, beyond(0) && beyond(1))
            })
            .unzip()
    }

    /// Where a stroke runs along the line beside its ink, and where such a stroke runs on through
    /// a crossing line. A stroke running along the line (the base of a 0 written on a rule, out
    /// of focus no stronger than the rule) widens the ink across the band beyond the line's own
    /// width there; what stands above the line's profile at those positions is that stroke's.
    /// (A rule that bends across the band keeps its width.) Where the band lies wholly on
    /// another line (a margin line crossing a rule), the width cannot be measured; a stroke that
    /// runs alongside on both sides of that crossing runs on through it, at the offsets where it
    /// stands above the line's profile on either side.
    fn strokes_along(&self, map: &InkMap) -> (Vec<bool>, Vec<bool>) {
        let n = self.line.family.positions(map);
        let half = 0.5 * self.own_strength;
        let bands = self.profile.len();
        let mut widths = vec![0usize; n];
        let mut crossed = vec![true; n];
        let mut stroke_at = vec![false; n * bands];
        for_band(map, &self.wide, |t, o, x, y| {
            if self.on_other_line(map, x, y) {
                return;
            }
            crossed[t] = false;
            let strength = map.strength_at(x, y);
            if strength > half {
                widths[t] += 1;
                let k = (o - self.wide.low) as usize;
                let (level, spread) = self.profile[k];
                stroke_at[t * bands + k] = strength > level + ABOVE_PROFILE_SIGMAS * spread;
            }
        });
        let own_width = {
            let mut inked: Vec<usize> = widths.iter().copied().filter(|&k| k > 0).collect();
            if inked.is_empty() {
                0
            } else {
                let k = (inked.len() - 1) / 2;
                *inked.select_nth_unstable(k).1
            }
        };
        let alongside: Vec<bool> = widths
            .iter()
            .map(|&k| own_width > 0 && k >= own_width + STROKE_BESIDE_LINE)
            .collect();
        let mut runs_through = vec![false; n * bands];
        let mut start = 0;
        for run in crossed.chunk_by(|a, b| a == b) {
            let end = start + run.len();
            if run[0] && start > 0 && end < n && alongside[start - 1] && alongside[end] {
                for k in 0..bands {
                    let on = stroke_at[(start - 1) * bands + k] || stroke_at[end * bands + k];
                    for u in start..end {
                        runs_through[u * bands + k] = on;
                    }
                }
            }
            start = end;
        }
        (alongside, runs_through)
    }

    /// Marks in `verdicts` each pixel of the band that is the line's own ink ([`CLEARED`]), and
    /// each that a stroke running on through a crossing holds ([`KEPT`]).
    fn judge(&self, map: &InkMap, verdicts: &mut [u8]) {
        let bands = self.profile.len();
        let half = 0.5 * self.own_strength;
        for_band(map, &self.wide, |t, o, x, y| {
            let other = self.on_other_line(map, x, y);
            let limit = if other {
                self.stronger_than_two
            } else {
                self.stronger
            };
            let strength = map.strength_at(x, y);
            // Where a stroke only touches the line (a digit sitting on a rule), its pixels on
            // the line hold the line's ink and its own: they stand above what the line holds at
            // that offset (where another line crosses, both). Where it crosses, the crossing is
            // the stroke's, however dark the line (ink on black ink adds nothing).
            let k = (o - self.wide.low) as usize;
            let (level, spread) = self.profile[k];
            let level = if other {
                level + self.own_strength
            } else {
                level
            };
            let above_profile = strength > level + ABOVE_PROFILE_SIGMAS * spread;
            let of_stroke_near = self.stroke_near[t] > 0.0
                && strength > STROKE_SHARE_ON_LINE * self.stroke_near[t]
                && (self.crossing[t] || above_profile);
            let beside = self.alongside[t] && !other && strength > half && above_profile;
            let i = y * map.width + x;
            if self.runs_through[t * bands + k] {
                verdicts[i] |= KEPT;
            } else if !(of_stroke_near || beside)
                && strength <= limit
                && !(strength > 0.0 && self.coloured(x, y, other))
            {
                verdicts[i] |= CLEARED;
            }
        });
    }

    /// Whether pixel `(x, y)` is as dark as the writing in the channel that hardly shows the
    /// line ([`STROKE_SHARE_IN_COLOUR`], or [`STROKE_SHARE_IN_COLOUR_ON_LINES`] where `other`
    /// lines cross it too).
    fn coloured(&self, x: usize, y: usize, other: bool) -> bool {
        self.by_colour.is_some_and(|(c, channel)| {
            let share = if other {
                STROKE_SHARE_IN_COLOUR_ON_LINES
            } else {
                STROKE_SHARE_IN_COLOUR
            };
            c.darkness(channel, x, y, self.colour_reach) >= share * c.ink[channel]
        })
    }
}

/// The picture's colour, where one plane shows a line and a stroke alike: a grey or blue pen
/// and the light blue rules are both dark in the red channel, yet the rules hardly show in the
/// blue one, and a red margin line hardly shows in the red one where blue ink is darkest.
struct Colours<'a> {
    planes: &'a [Vec<f32>],
    width: usize,
    height: usize,
    /// How far beyond a pixel the paper around it is looked for, on top of a line's band: past
    /// a stroke running along the line.
    reach: usize,
    /// The writing's darkness in each channel ([`Colours::darkness`]): the median over the
    /// strongest ink off the lines.
    ink: [f32; 3],
}

/// A channel tells a stroke from a line when the line's darkness there is at most this share
/// of the writing's ...
const LINE_SHARE_IN_COLOUR: f32 = 0.3;
/// ... and then a band pixel at least this share of the writing's darkness there is stroke ...
const STROKE_SHARE_IN_COLOUR: f32 = 0.5;
/// ... or this share where another line crosses it or runs over it: there the other line's ink
/// adds its own darkness (a light blue rule crossing a red margin line is half as dark as blue
/// ink in the red channel, where the margin line is not), and what stays of both lines was left
/// as dots along a margin line drawn over a grid line.
const STROKE_SHARE_IN_COLOUR_ON_LINES: f32 = 0.8;
/// The writing must be at least this dark in a channel (a share of the paper's brightness) for
/// the channel to tell anything: far above a sensor's noise.
const MIN_INK_DARKNESS: f32 = 0.1;
/// Fewer pixels of the strongest ink than this off the lines are not the writing's colour.
const MIN_INK_PIXELS: usize = 20;

impl<'a> Colours<'a> {
    /// `None` unless `planes` are red, green and blue with no alpha, the size of `map`, and the
    /// writing off the lines (`on_lines` 0) is dark ink on light paper with enough pixels.
    fn new(map: &InkMap, planes: Option<&'a Planes>, on_lines: &[u8]) -> Option<Self> {
        let planes = planes.filter(|p| {
            p.alpha.is_none()
                && p.colour.len() == 3
                && p.width == map.width
                && p.height == map.height
        })?;
        let reach = (2.0 * map.stroke_width()?).ceil() as usize + 1;
        let mut colours = Colours {
            planes: &planes.colour,
            width: map.width,
            height: map.height,
            reach,
            ink: [0.0; 3],
        };
        let strongest: Vec<usize> = (0..map.ink.len())
            .filter(|&i| map.ink[i] >= 1.0 && on_lines[i] == 0)
            .collect();
        if strongest.len() < MIN_INK_PIXELS {
            return None;
        }
        let step = (strongest.len() / 2000).max(1);
        colours.ink = [0, 1, 2].map(|c| {
            let values: Vec<f32> = strongest
                .iter()
                .step_by(step)
                .map(|&i| colours.darkness(c, i % map.width, i / map.width, 0))
                .collect();
            percentile(&values, 0.5)
        });
        colours
            .ink
            .iter()
            .any(|&d| d >= MIN_INK_DARKNESS)
            .then_some(colours)
    }

    /// How much darker pixel `(x, y)` is in channel `c` than the paper around it, as a share of
    /// the paper's brightness. The paper is the third brightest of eight pixels
    /// `self.reach + extra` away around it: the line runs through two of them, and a stroke
    /// nearby may cross another.
    fn darkness(&self, c: usize, x: usize, y: usize, extra: usize) -> f32 {
        let plane = &self.planes[c];
        let r = (self.reach + extra) as isize;
        let d = (r as f32 * std::f32::consts::FRAC_1_SQRT_2).round() as isize;
        let mut ring = [0.0f32; 8];
        let mut n = 0;
        for (dx, dy) in [
            (r, 0),
            (-r, 0),
            (0, r),
            (0, -r),
            (d, d),
            (d, -d),
            (-d, d),
            (-d, -d),
        ] {
            let (px, py) = (x as isize + dx, y as isize + dy);
            if px >= 0 && py >= 0 && (px as usize) < self.width && (py as usize) < self.height {
                ring[n] = plane[py as usize * self.width + px as usize];
                n += 1;
            }
        }
        if n < 3 {
            return 0.0;
        }
        // The third brightest.
        let (_, &mut paper, _) = ring[..n].select_nth_unstable_by(2, |a, b| b.total_cmp(a));
        if paper <= 0.0 {
            return 0.0;
        }
        1.0 - plane[y * self.width + x] / paper
    }

    /// The channel that shows `line` least against the writing; `None` when every channel shows
    /// the line at more than [`LINE_SHARE_IN_COLOUR`] of the writing. The line's darkness is the
    /// median over its band's own ink (between `low` and `high` strength, off the other lines,
    /// or on them where too little is off), with the paper looked for `extra` pixels further
    /// out than [`Colours::reach`].
    fn channel_for(
        &self,
        map: &InkMap,
        line: &Line,
        extra: usize,
        on_other_line: impl Fn(usize, usize) -> bool,
        low: f32,
        high: f32,
    ) -> Option<usize> {
        // Off the other lines where it can be; a line drawn over another (a margin line on a
        // grid line) lies wholly on it, and is measured with it.
        let (mut own, mut shared) = (Vec::new(), Vec::new());
        let n = line.family.positions(map);
        let step = (n / 400).max(1);
        for_band(map, line, |t, _, x, y| {
            let strength = map.strength_at(x, y);
            if t % step == 0 && strength > low && strength <= high {
                if on_other_line(x, y) {
                    shared.push((x, y));
                } else {
                    own.push((x, y));
                }
            }
        });
        if own.len() < MIN_INK_PIXELS {
            own = shared;
        }
        if own.len() < MIN_INK_PIXELS {
            return None;
        }
        (0..3)
            .filter(|&c| self.ink[c] >= MIN_INK_DARKNESS)
            .map(|c| {
                let values: Vec<f32> = own
                    .iter()
                    .map(|&(x, y)| self.darkness(c, x, y, extra))
                    .collect();
                (c, percentile(&values, 0.5) / self.ink[c])
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .filter(|&(_, share)| share <= LINE_SHARE_IN_COLOUR)
            .map(|(c, _)| c)
    }
}

/// How strong a line's own ink is: along the line, the strongest pixel across its band at each
/// position (its core, not its anti-aliased fringe), and the median of that over the positions
/// that hold ink (writing along the line covers less than half of it).
fn strength(map: &InkMap, line: &Line) -> f32 {
    let mut core = vec![0.0f32; line.family.positions(map)];
    for_band(map, line, |t, _, x, y| {
        core[t] = core[t].max(map.strength_at(x, y))
    });
    core.retain(|&v| v > 0.0);
    if core.is_empty() {
        return 0.0;
    }
    let k = (core.len() - 1) / 2;
    *core.select_nth_unstable_by(k, f32::total_cmp).1
}

/// The line's own strength across its band: for each offset of `line`'s band, from its low
/// side, the median strength along it and the robust deviation around that ((0, 0) for an
/// offset with no pixel inside the picture).
fn profile(map: &InkMap, line: &Line) -> Vec<(f32, f32)> {
    let mut values: Vec<Vec<f32>> = Vec::new();
    for_band(map, line, |_, o, x, y| {
        let k = (o - line.low) as usize;
        if values.len() <= k {
            values.resize_with(k + 1, Vec::new);
        }
        values[k].push(map.strength_at(x, y));
    });
    values.iter().map(|v| centre_and_noise(v)).collect()
}

/// Calls `f(t, offset, x, y)` for every pixel of the band of `line` inside the picture.
fn for_band(map: &InkMap, line: &Line, mut f: impl FnMut(usize, f32, usize, usize)) {
    for t in 0..line.family.positions(map) {
        let mut o = line.low;
        while o <= line.high {
            if let Some((x, y)) = line.family.pixel(map, t, o) {
                f(t, o, x, y);
            }
            o += 1.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w` x `h` map with ink where `ink(x, y)`.
    fn map(w: usize, h: usize, ink: impl Fn(usize, usize) -> bool) -> InkMap {
        let mut m = InkMap::new(w, h);
        for y in 0..h {
            for x in 0..w {
                if ink(x, y) {
                    m.ink[y * w + x] = 1.0;
                }
            }
        }
        m
    }

    /// A `w` x `h` map whose strength (uncapped) is `strength(x, y)`, its ink that capped at 1.
    fn strength_map(w: usize, h: usize, strength: impl Fn(usize, usize) -> f32) -> InkMap {
        let mut m = InkMap::new(w, h);
        m.strength = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .map(|(x, y)| strength(x, y))
            .collect();
        m.ink = m.strength.iter().map(|v| v.min(1.0)).collect();
        m
    }

    #[test]
    fn rules_go_and_the_stroke_crossing_them_stays_whole() {
        // Rules every 20 rows (2 px thick) and a vertical stroke crossing three of them.
        let rule = |y: usize| y % 20 == 10 || y % 20 == 11;
        let stroke = |x: usize, y: usize| (60..63).contains(&x) && (25..75).contains(&y);
        let mut m = map(120, 100, |x, y| rule(y) || stroke(x, y));
        assert_eq!(remove_page_lines(&mut m, None), 5);
        for y in 25..75 {
            assert!((60..63).all(|x| m.at(x, y) > 0.0), "stroke cut at row {y}");
        }
        let left: usize = (0..100)
            .flat_map(|y| (0..120).map(move |x| (x, y)))
            .filter(|&(x, y)| m.at(x, y) > 0.0 && !stroke(x, y))
            .count();
        // Only short stubs of the rules beside the stroke remain: 3 rules, 2 rows, 2 sides,
        // up to 4 positions.
        assert!(left <= 3 * 2 * 2 * 4, "{left} pixels of rules left");
    }

    #[test]
    fn where_a_pen_crosses_faint_rules_only_the_pen_stays() {
        // Faint rules (ink 0.3, 2 px thick) every 20 rows; a pen stroke (ink 1, 3 px wide)
        // crosses three of them on a slant. None of the rules is left beside it to hang off
        // the digit as a bar, and the stroke is whole.
        let rule = |y: usize| y % 20 == 10 || y % 20 == 11;
        let stroke = |x: usize, y: usize| {
            let centre = 60 + (y.saturating_sub(25)) / 3;
            (25..75).contains(&y) && (centre..centre + 3).contains(&x)
        };
        let mut m = map(120, 100, |x, y| rule(y) || stroke(x, y));
        for y in 0..100 {
            for x in 0..120 {
                if !stroke(x, y) {
                    m.ink[y * 120 + x] *= 0.3;
                }
            }
        }
        assert_eq!(remove_page_lines(&mut m, None), 5);
        let cut: Vec<(usize, usize)> = (0..100)
            .flat_map(|y| (0..120).map(move |x| (x, y)))
            .filter(|&(x, y)| stroke(x, y) && m.at(x, y) == 0.0)
            .collect();
        assert!(cut.is_empty(), "stroke cut at {cut:?}");
        let left: Vec<(usize, usize)> = (0..100)
            .flat_map(|y| (0..120).map(move |x| (x, y)))
            .filter(|&(x, y)| m.at(x, y) > 0.0 && !stroke(x, y))
            .collect();
        assert!(left.is_empty(), "rules left beside the stroke at {left:?}");
    }

    #[test]
    fn a_turned_grid_goes() {
        // Squared paper turned 2 degrees: both families found, nothing left.
        let t = 2f32.to_radians();
        let mut m = map(200, 150, |x, y| {
            let (x, y) = (x as f32, y as f32);
            let u = x * t.cos() + y * t.sin();
            let v = y * t.cos() - x * t.sin();
            (u.rem_euclid(25.0)) < 1.5 || (v.rem_euclid(25.0)) < 1.5
        });
        let inked = |m: &InkMap| m.ink.iter().filter(|&&v| v > 0.0).count();
        let before = inked(&m);
        assert!(remove_page_lines(&mut m, None) >= 12);
        // A few pixels at crossings and at the picture's edge may stay: specks, dropped later.
        assert!(
            inked(&m) * 100 < before,
            "{} of {before} pixels left",
            inked(&m)
        );
    }

    #[test]
    fn a_digit_one_is_not_a_line() {
        // A tall stroke over 70% of the picture's height, alone: writing, not ruling.
        let mut m = map(60, 100, |x, y| {
            (28..32).contains(&x) && (15..85).contains(&y)
        });
        let before = m.clone();
        assert_eq!(remove_page_lines(&mut m, None), 0);
        assert_eq!(m, before);
    }

    #[test]
    fn a_bold_bar_across_a_tight_crop_is_not_a_line() {
        // A 7 written with a marker and cropped tight: its bar, 10 px thick with soft edges,
        // spans 93% of the picture's width. It is as heavy across as it is thick, with no thin
        // core: writing, not a printed line.
        let mut m = map(120, 120, |x, y| {
            ((4..116).contains(&x) && (9..21).contains(&y))
                || ((x as i32 - (110 - (y as i32 - 21) * 4 / 5)).abs() < 5
                    && (21..110).contains(&y))
        });
        for x in 4..116 {
            m.ink[9 * 120 + x] = 0.5;
            m.ink[20 * 120 + x] = 0.5;
        }
        let before = m.clone();
        assert_eq!(remove_page_lines(&mut m, None), 0);
        assert_eq!(m, before);
    }

    #[test]
    fn a_pen_bar_across_a_small_tight_crop_is_not_a_line() {
        // A 7 written with a pen and cropped to its ink, 48 x 60 px: its bar, 4 px thick, spans
        // the whole width, as a margin line would, but is only 12 times as long as thick.
        let mut m = map(48, 60, |x, y| {
            y < 4 || (x as i32 - (45 - y as i32 * 3 / 4)).abs() < 2
        });
        let before = m.clone();
        assert_eq!(remove_page_lines(&mut m, None), 0);
        assert_eq!(m, before);
    }

    #[test]
    fn a_margin_line_on_a_small_crop_of_ruled_paper_goes_however_short() {
        // 160 x 45 px of ruled paper: rules every 12 rows, and a margin line 2 px thick, only 22
        // times as long as thick. The rules make a set, so the page is ruled and the margin
        // line is one of its lines.
        let rule = |y: usize| y % 12 == 5;
        let margin = |x: usize| (40..42).contains(&x);
        let mut m = map(160, 45, |x, y| rule(y) || margin(x));
        assert_eq!(remove_page_lines(&mut m, None), 5);
        assert!(m.ink.iter().all(|&v| v == 0.0), "ink left");
    }

    #[test]
    fn a_turned_pages_rule_that_leaves_through_the_edge_goes_with_its_set() {
        // Rules every 20 rows, the page turned 3 degrees: the top rule is inside the picture for
        // its first 29 columns only, too short to be a line of its own.
        let t = 3f32.to_radians().tan();
        let rule = |x: usize, y: usize| (y as f32 + x as f32 * t - 1.5).rem_euclid(20.0) < 1.5;
        let mut m = map(200, 100, rule);
        let before = m.ink.iter().filter(|&&v| v > 0.0).count();
        remove_page_lines(&mut m, None);
        let left: Vec<(usize, usize)> = (0..100)
            .flat_map(|y| (0..200).map(move |x| (x, y)))
            .filter(|&(x, y)| m.at(x, y) > 0.0)
            .collect();
        assert!(
            left.len() * 100 < before,
            "{} of {before} left: {left:?}",
            left.len()
        );
        assert!((0..29).all(|x| m.at(x, 0) == 0.0), "the cut rule stayed");
    }

    #[test]
    fn a_stub_of_a_rule_at_the_edge_goes_where_the_set_puts_a_rule() {
        // Rules every 20 rows, the page turned 3 degrees: the top rule is inside the picture for
        // its first 17 columns only (8.5% of its length), and its band (which the edge cuts
        // later than the rule) is inked over 60% of what of it is inside: less than a set's
        // line needs, yet where the set's spacing puts a rule. Left, it is a stub that could
        // pass for a stroke.
        let t = 3f32.to_radians().tan();
        let rule = |x: usize, y: usize| (y as f32 + x as f32 * t + 0.66).rem_euclid(20.0) < 1.5;
        let mut m = map(200, 100, rule);
        let stub = |m: &InkMap| (0..20).filter(|&x| m.at(x, 0) > 0.0).collect::<Vec<_>>();
        assert_eq!(stub(&m).len(), 17, "{:?}", stub(&m));
        remove_page_lines(&mut m, None);
        assert!(stub(&m).is_empty(), "the stub stayed: {:?}", stub(&m));
    }

    #[test]
    fn a_rule_whose_centre_leaves_through_the_edge_is_a_cut_one() {
        // Vertical rules 3 px wide every 20 columns, the page turned 0.75 degrees. The first
        // one's centre drifts from 3.5 px inside the left edge to 0.3 px outside it over the
        // 290 rows, and it fades where that centre is nearer the edge than its half-width: inked
        // over 53% of the rows. The outer edge of its band stays inside all the way down, but
        // the rule is one the edge cuts, where the set's spacing puts a rule.
        let t = 0.75f32.to_radians().tan();
        let rule = |x: usize, y: usize| {
            (0..10).any(|k| {
                let centre = 3.5 + 20.0 * k as f32 - y as f32 * t;
                (x as f32 - centre).abs() < 1.5 && (k > 0 || centre >= 1.5)
            })
        };
        let mut m = map(200, 290, rule);
        let stub = |m: &InkMap| {
            (0..290)
                .flat_map(|y| (0..8).map(move |x| (x, y)))
                .filter(|&(x, y)| m.at(x, y) > 0.0)
                .count()
        };
        assert!(stub(&m) > 300);
        remove_page_lines(&mut m, None);
        assert_eq!(stub(&m), 0, "the stub stayed");
    }

    #[test]
    fn a_rule_turned_between_the_tried_directions_is_cut_where_the_edge_cuts_it() {
        // Vertical rules 2 px wide every 30 columns on a 900 x 800 picture, the page turned 0.125
        // degrees: half way between two of the coarse directions, so a rule at either drifts
        // 1.7 px down the picture. The last rule leaves through the right edge half way down; at
        // a coarse direction it was taken as wholly inside and half inked, neither a line of
        // the set nor one the edge cuts, and its lower half stayed as a 1.
        let t = 0.125f32.to_radians();
        let (w, h) = (900, 800);
        let mut m = map(w, h, |x, y| {
            let u = x as f32 * t.cos() + y as f32 * t.sin();
            (u + 0.13).rem_euclid(30.0) < 2.0
        });
        let edge = |m: &InkMap| {
            (0..h)
                .flat_map(|y| (w - 4..w).map(move |x| (x, y)))
                .filter(|&(x, y)| m.at(x, y) > 0.0)
                .count()
        };
        assert!(edge(&m) > 300, "the last rule is {} px", edge(&m));
        remove_page_lines(&mut m, None);
        assert_eq!(edge(&m), 0, "the cut rule stayed");
        assert!(m.is_blank());
    }

    #[test]
    fn squared_paper_looked_at_at_half_size_is_a_set() {
        // Squared paper at half size (a blank page's second look): lines 2 px thick, 7.5 px
        // apart, the page turned 2.5 degrees. The first vertical line leaves the picture
        // through its left edge half way down, and what is inside of it is broken (every
        // fourth row): too broken to be a line on its own, and only a set's spacing says it is
        // one. The lines' spacing is under twice the thickness a line may have, but they stand
        // well apart for lines of theirs: a set, so the stub goes with it. Left, it was read
        // as a 1.
        let t = 2.5f32.to_radians();
        let (w, h) = (155, 146);
        let mut m = map(w, h, |x, y| {
            let (fx, fy) = (x as f32, y as f32);
            let u = fx * t.cos() + fy * t.sin();
            let v = fy * t.cos() - fx * t.sin();
            let across = (v + 1.0).rem_euclid(7.5) < 1.6;
            let down = (u + 4.0).rem_euclid(7.5) < 1.6 && !(u < 6.0 && y % 4 == 0);
            across || down
        });
        remove_page_lines(&mut m, None);
        let left: Vec<(usize, usize)> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .filter(|&(x, y)| m.at(x, y) > 0.0)
            .collect();
        // What is left is a few lone pixels where lines crossed, no digit.
        assert!(left.len() <= 5, "{} pixels left: {left:?}", left.len());
        assert!(crate::segment::number_glyphs(&m).is_empty(), "{left:?}");
    }

    #[test]
    fn a_band_of_writing_beside_a_rule_is_not_a_second_line_and_a_margin_line_on_a_grid_line_is() {
        let family = Family {
            vertical: false,
            angle: 0.0,
        };
        let line = |low, high, coverage| Line {
            family,
            low,
            high,
            coverage,
        };
        let bands = |lines: &[(Line, bool)]| -> Vec<(f32, f32)> {
            without_writing_beside_lines(lines.to_vec())
                .iter()
                .map(|l| (l.low, l.high))
                .collect()
        };
        // A rule (its band widened by the strokes on it), the band of a number's strokes beside
        // it, which only the set's spacing admits (seed 41's combined `354907`), and the next
        // rule: the strokes' band goes.
        let rule = (line(151.0, 157.0, 1.0), true);
        let strokes = (line(155.0, 162.0, 0.88), false);
        let next = (line(208.0, 212.0, 1.0), true);
        assert_eq!(
            bands(&[rule, strokes, next]),
            [(151.0, 157.0), (208.0, 212.0)]
        );
        // Apart from any line, it stays a line of the set.
        assert_eq!(bands(&[strokes, next]), [(155.0, 162.0), (208.0, 212.0)]);
        // A broken margin line (a line alone by its faintness) over a grid line: both stay.
        let grid = (line(380.0, 384.0, 1.0), true);
        let margin = (line(382.0, 388.0, 0.88), true);
        assert_eq!(bands(&[grid, margin]), [(380.0, 384.0), (382.0, 388.0)]);
    }

    #[test]
    fn a_set_is_found_among_lines_that_break_its_spacing() {
        // Rules every 20 rows, one broken (80% inked: only a set's member goes), and a full line
        // at row 47 off the spacing (a header line): all go.
        let mut m = map(150, 120, |x, y| {
            (y % 20 == 10 && !(y == 70 && x % 5 == 0)) || y == 47
        });
        assert_eq!(remove_page_lines(&mut m, None), 7);
        assert!(m.is_blank());
    }

    #[test]
    fn a_pen_stroke_along_a_rule_is_kept() {
        // Faint printed rules (ink 0.3) every 20 rows; a pen (ink 1) runs along the rule at row
        // 50 for 30 of its 400 columns, as the base of a 2 written on the line, and leaves it
        // upwards.
        let mut m = map(400, 100, |_, y| y % 20 == 10);
        m.ink.iter_mut().for_each(|v| *v *= 0.3);
        for x in 160..190 {
            m.ink[50 * 400 + x] = 1.0;
        }
        for y in 30..50 {
            m.ink[y * 400 + 160] = 1.0;
        }
        assert_eq!(remove_page_lines(&mut m, None), 5);
        assert!((160..190).all(|x| m.at(x, 50) == 1.0));
        assert!(m.at(20, 50) == 0.0 && m.at(340, 50) == 0.0);
    }

    #[test]
    fn a_grey_stroke_along_a_blue_rule_as_strong_as_it_stays_by_its_colour() {
        // Light blue rules every 20 rows on white paper and a grey pen running along the rule
        // at row 50 for 60 of its 400 columns, leaving it upwards at both ends (the 1 of a
        // number written down a grid line): the map's plane shows pen and rule alike (ink 1),
        // the blue plane shows the pen only.
        let (w, h) = (400, 100);
        let rule = |y: usize| y % 20 == 10;
        let pen = |x: usize, y: usize| {
            (y == 50 && (160..220).contains(&x))
                || ((x == 160 || x == 219) && (30..50).contains(&y))
        };
        let mut m = map(w, h, |x, y| rule(y) || pen(x, y));
        let colour = |x: usize, y: usize| match (pen(x, y), rule(y)) {
            (true, _) => [0.3, 0.3, 0.3],
            (false, true) => [0.3, 0.55, 0.9],
            (false, false) => [0.95, 0.95, 0.95],
        };
        let planes = rgb_planes(w, h, colour);
        let mut grey = m.clone();
        assert_eq!(remove_page_lines(&mut m, Some(&planes)), 5);
        assert!((160..220).all(|x| m.at(x, 50) == 1.0));
        assert!(m.at(20, 50) == 0.0 && m.at(340, 50) == 0.0 && m.at(20, 30) == 0.0);
        // Without the colour the middle of the stroke goes with the rule.
        assert_eq!(remove_page_lines(&mut grey, None), 5);
        assert_eq!(grey.at(190, 50), 0.0);
    }

    /// Red, green and blue planes, `w` x `h`, of `colour(x, y)`.
    fn rgb_planes(w: usize, h: usize, colour: impl Fn(usize, usize) -> [f32; 3]) -> Planes {
        Planes {
            width: w,
            height: h,
            colour: (0..3)
                .map(|c| (0..w * h).map(|i| colour(i % w, i / w)[c]).collect())
                .collect(),
            alpha: None,
        }
    }

    #[test]
    fn a_stroke_along_a_margin_line_drawn_over_a_grid_line_stays_by_its_colour() {
        // A red margin line (columns 30-33) drawn over a blue grid line (28-30): each lies
        // wholly on the other's band and fringe, so neither's colour can be measured off the
        // other. Blue ink runs down the margin line (columns 31-32, rows 50-70) and leaves it to
        // the left at both ends; the map's plane shows all of it alike.
        let (w, h) = (100, 120);
        let vertical = |low: f32, high: f32| Line {
            family: Family {
                vertical: true,
                angle: 0.0,
            },
            low,
            high,
            coverage: 1.0,
        };
        let lines = [vertical(28.0, 30.0), vertical(30.0, 33.0)];
        let pen = |x: usize, y: usize| {
            ((31..=32).contains(&x) && (50..=70).contains(&y))
                || ((5..31).contains(&x) && (y == 50 || y == 70))
        };
        let mut m = map(w, h, |x, y| (28..=33).contains(&x) || pen(x, y));
        let planes = rgb_planes(w, h, |x, y| match (pen(x, y), x) {
            (true, _) => [0.15, 0.15, 0.45],
            (false, 28..=29) => [0.6, 0.75, 0.95],
            // Printed inks over each other: their shares of the light multiply.
            (false, 30) => [0.54, 0.34, 0.43],
            (false, 31..=33) => [0.9, 0.45, 0.45],
            _ => [0.95, 0.95, 0.95],
        });
        let mut grey = m.clone();
        erase(&mut m, &lines, Some(&planes));
        assert!((31..=32).all(|x| (51..70).all(|y| m.at(x, y) == 1.0)));
        assert!((28..=33).all(|x| m.at(x, 10) == 0.0 && m.at(x, 110) == 0.0));
        // Without the colour, the stroke's middle goes with the lines.
        erase(&mut grey, &lines, None);
        assert_eq!(grey.at(31, 60), 0.0);
    }

    #[test]
    fn a_blurred_rule_goes_between_the_digits_that_sit_on_it() {
        // Out of focus: rules every 50 rows blurred over 5 rows (strength up to 1, with a
        // little noise), and two rings (strokes 3 px wide, strength 1, adding to the rule's
        // where they overlap it) sitting on the rule at row 90, 8 columns apart. Pen and rule
        // are about as strong, so strength alone cannot tell the rule beside the rings from
        // their strokes; what is no stronger than the rule's own profile goes, and the rings
        // stay closed.
        let (w, h) = (240, 150);
        let profile = [0.5, 0.9, 1.0, 0.9, 0.5];
        let rule = |x: usize, y: usize| {
            let k = (y + 50 - 38) % 50;
            let noise = ((x * 7919 + y * 104_729) % 11) as f32 * 0.01 - 0.05;
            profile.get(k).map_or(0.0, |p| p + noise)
        };
        let centres = [(60.0f32, 74.0f32), (100.0, 74.0)];
        let ring = |x: usize, y: usize| {
            centres.iter().any(|&(cx, cy)| {
                let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
                (13.5..16.5).contains(&d)
            })
        };
        let mut m = strength_map(w, h, |x, y| rule(x, y) + if ring(x, y) { 1.0 } else { 0.0 });
        assert_eq!(remove_page_lines(&mut m, None), 3);
        let left: Vec<(usize, usize)> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .filter(|&(x, y)| m.at(x, y) > 0.0 && !ring(x, y))
            .collect();
        assert!(left.is_empty(), "rule left beside the rings at {left:?}");
        let cut: Vec<(usize, usize)> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .filter(|&(x, y)| ring(x, y) && m.at(x, y) == 0.0)
            .collect();
        assert!(cut.is_empty(), "rings cut at {cut:?}");
    }

    #[test]
    fn a_grid_line_goes_between_two_strokes_close_beside_it() {
        // Squared paper (lines 1 px wide, strength 1, every 40 px) and, between two horizontal
        // lines, two pen strokes (strength 2.5) 7-8 px either side of a vertical one, with the
        // ringing of JPEG (strength 0.1-0.25) all between them and the line. The ringing is
        // no stroke crossing the line: the line goes there, and the strokes stay apart.
        let (w, h) = (200, 120);
        let grid = |x: usize, y: usize| x % 40 == 20 || y % 40 == 20;
        let stroke = |x: usize, y: usize| [92, 93, 107, 108].contains(&x) && (24..57).contains(&y);
        let ringing =
            |x: usize, y: usize| (94..107).contains(&x) && x != 100 && (24..57).contains(&y);
        let mut m = strength_map(w, h, |x, y| {
            if stroke(x, y) {
                2.5
            } else if grid(x, y) {
                1.0
            } else if ringing(x, y) {
                0.1 + ((x * 7919 + y * 104_729) % 16) as f32 * 0.01
            } else {
                0.0
            }
        });
        remove_page_lines(&mut m, None);
        let left: Vec<usize> = (24..57).filter(|&y| m.at(100, y) > 0.0).collect();
        assert!(
            left.is_empty(),
            "grid line left between the strokes at rows {left:?}"
        );
        let cut: Vec<(usize, usize)> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .filter(|&(x, y)| stroke(x, y) && m.at(x, y) == 0.0)
            .collect();
        assert!(cut.is_empty(), "strokes cut at {cut:?}");
    }

    /// Rules every 50 rows blurred over 3 rows (strength up to 1.2, with a little noise), a
    /// margin line of strength 1 over the columns `margin`, and the base of a 0 open at the top
    /// (strokes 3 px wide, strength 1.2: a blurred pen is no stronger than the rule) running 70
    /// columns along just above the rule at row 90. Removes the page's lines, checks that the 0
    /// is whole and nothing else is left, and returns how many lines went.
    fn a_zero_along_a_blurred_rule(margin: std::ops::Range<usize>) -> usize {
        let (w, h) = (240, 150);
        let profile = [0.7, 1.2, 0.7];
        let rule = |x: usize, y: usize| {
            let k = (y + 50 - 39) % 50;
            let noise = ((x * 7919 + y * 104_729) % 11) as f32 * 0.01 - 0.05;
            profile.get(k).map_or(0.0, |p| p + noise)
        };
        let zero = |x: usize, y: usize| {
            let arm = (60..63).contains(&x) || (130..133).contains(&x);
            (arm && (50..89).contains(&y)) || ((60..133).contains(&x) && (86..89).contains(&y))
        };
        let mut m = strength_map(w, h, |x, y| {
            let page = rule(x, y) + if margin.contains(&x) { 1.0 } else { 0.0 };
            page.max(if zero(x, y) { 1.2 } else { 0.0 })
        });
        let lines = remove_page_lines(&mut m, None);
        let cut: Vec<(usize, usize)> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .filter(|&(x, y)| zero(x, y) && m.at(x, y) == 0.0)
            .collect();
        assert!(cut.is_empty(), "the 0 cut at {cut:?}");
        let left: Vec<(usize, usize)> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .filter(|&(x, y)| m.at(x, y) > 0.0 && !zero(x, y))
            .collect();
        assert!(left.is_empty(), "lines left beside the 0 at {left:?}");
        lines
    }

    #[test]
    fn a_stroke_running_along_beside_a_rule_as_strong_as_it_stays() {
        // Out of focus, the pen no stronger than the rule. Neither stronger than the rule nor
        // near where the arms leave it, the middle of the base was taken for the rule, leaving
        // two arcs read as two digits.
        assert_eq!(a_zero_along_a_blurred_rule(0..0), 3);
    }

    #[test]
    fn a_stroke_along_a_rule_runs_on_where_a_margin_line_crosses_it() {
        // The same, with a margin line 2 px wide crossing the rule under the base. Where the
        // lines cross, the ink beside the rule lies on the margin line too: the rule's pass could
        // not measure the stroke's width there, and the margin line's pass saw no stroke leaving
        // it except onto the rule, so the base was cut where the margin line crosses it
        // (`8038613` read as `86238613`).
        assert_eq!(a_zero_along_a_blurred_rule(95..97), 4);
    }

    #[test]
    fn rules_blurred_wider_than_a_printed_line_are_found_by_their_core() {
        // A small photo out of focus: rules every 80 rows blurred over 7 rows, every row inked
        // (strength 0.1 at the edges to 0.6 at the centre), thicker than a printed line may be
        // on a picture of this size; and a ring between them. Each rule peaks at its centre, so
        // its core (the rows holding half its peak above its edges) is thin: the rules go.
        let (w, h) = (300, 250);
        let profile = [0.1, 0.3, 0.5, 0.6, 0.5, 0.3, 0.1];
        let rule = |x: usize, y: usize| {
            let noise = ((x * 7919 + y * 104_729) % 11) as f32 * 0.01 - 0.05;
            profile.get((y + 80 - 37) % 80).map_or(0.0, |p| p + noise)
        };
        let ring = |x: usize, y: usize| {
            let d = ((x as f32 - 150.0).powi(2) + (y as f32 - 80.0).powi(2)).sqrt();
            (20.0..24.0).contains(&d)
        };
        let mut m = strength_map(w, h, |x, y| {
            rule(x, y).max(if ring(x, y) { 1.0 } else { 0.0 })
        });
        assert_eq!(remove_page_lines(&mut m, None), 3);
        let left = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .filter(|&(x, y)| m.at(x, y) > 0.0 && !ring(x, y))
            .count();
        assert_eq!(left, 0, "pixels of the rules left");
        assert!((0..h).all(|y| (0..w).all(|x| !ring(x, y) || m.at(x, y) == 1.0)));
    }

    #[test]
    fn a_rule_under_a_number_written_on_it_is_found() {
        // Rules every 30 rows; along the rule at row 70, eight digits' bases (each 15 wide, 4
        // rows thick round the rule) cover 120 of its 300 columns, widening the rows that hold
        // ink there beyond a printed line's thickness.
        let base = |x: usize, y: usize| x % 35 < 15 && x < 280 && (68..72).contains(&y);
        let mut m = map(300, 150, |x, y| y % 30 == 10 || base(x, y));
        m.ink.iter_mut().for_each(|v| *v *= 0.3);
        for y in 68..72 {
            for x in 0..300 {
                if base(x, y) {
                    m.ink[y * 300 + x] = 1.0;
                }
            }
        }
        assert_eq!(remove_page_lines(&mut m, None), 5);
        assert!((0..280).all(|x| !base(x, 70) || m.at(x, 70) == 1.0));
        assert_eq!(m.at(290, 70), 0.0);
    }

    #[test]
    fn a_margin_line_alone_goes() {
        let mut m = map(100, 80, |x, y| {
            x == 20 || ((50..70).contains(&x) && y == 40)
        });
        assert_eq!(remove_page_lines(&mut m, None), 1);
        assert!((50..70).all(|x| m.at(x, 40) > 0.0));
        assert!((0..80).all(|y| m.at(20, y) == 0.0));
    }

    #[test]
    fn a_faint_broken_margin_line_goes_and_a_stroke_as_broken_stays() {
        // Rules every 20 rows at 0.4 of a stroke's strength, and down the page two lines with
        // one row in eight missing (88% inked, too broken for a line alone): a margin line at
        // 0.1 of a stroke's strength and a stroke at full strength.
        let broken = |y: usize| y % 8 == 3;
        let mut m = strength_map(120, 100, |x, y| match x {
            30 if !broken(y) => 0.1,
            70 if !broken(y) => 1.0,
            _ if y % 20 == 10 => 0.4,
            _ => 0.0,
        });
        assert_eq!(remove_page_lines(&mut m, None), 6);
        assert!(
            (0..100).all(|y| m.at(30, y) == 0.0),
            "the margin line stayed"
        );
        assert!(
            (0..100).all(|y| m.at(70, y) == if broken(y) { 0.0 } else { 1.0 }),
            "the stroke was cut"
        );
    }
}
