//! The edges of a page photographed on a table. A phone photo of a written page often shows the
//! table around it: past the page's edges the picture is wood, grey or black, with its own grain.
//! Left in, the page's outline is a long line around the writing (and the writing one glyph
//! with it), the page's rules stop short of the picture's sides (so they are not found as the
//! page's lines), and the table's grain passes for ink. So before ink is looked for, whatever
//! lies past an edge of the page is painted over with the paper beside that edge: the reader
//! then sees a page that fills the picture, as a photo taken closer would show.
//!
//! An edge of the page is told from everything else on it by being a step, not a line: paper
//! on one side, something else on the other, all along the middle half of the picture's side;
//! straight (turned at most [`MAX_TURN_DEGREES`](crate::lines::MAX_TURN_DEGREES), as the page's
//! lines are looked for); and sharp, where the edge of a shadow falls off over several pixels
//! (its penumbra). A printed line or a stroke has the same paper on both sides.

use crate::ink::{InkMap, Planes};
use crate::lines::MAX_TURN_DEGREES;

/// A picture under this many pixels on its shorter side is a cut, not a photo of a page on a
/// table: no edge is looked for in it. In a strip 46 px high cut close around a number, the left
/// side of a bold 8 passed for one (`scripts/image-accuracy.sh`'s pictures, seed 5).
const MIN_SIDE: usize = 150;
/// The edges are looked for on the planes shrunk to at most this many pixels on their longer
/// side: a page's edge is long, and this is enough to place it within a few pixels.
const SEARCH_SIDE: usize = 400;
/// A page's edge lies within this share of the picture from the picture's side: a photo of a
/// page shows mostly page.
const EDGE_REACH: f32 = 0.3;
/// The edge is followed along the middle half of the picture's side, which it crosses whatever
/// the page's other edges do.
const ALONG: std::ops::Range<f32> = 0.25..0.75;
/// Across an edge, paper and table differ by at least this share of the brighter of the two in
/// some colour channel, each the median of what lies [`FAR`] to either side.
const MIN_STEP: f32 = 0.12;
/// How far (pixels of the search size) to either side of an edge paper and table are measured:
/// past its blur, and over enough pixels that a printed line there is outvoted.
const FAR: std::ops::RangeInclusive<usize> = 3..=7;
const FAR_SAMPLES: usize = 5;
/// ... and at least this share of that difference lies across the edge's own two pixels: a
/// shadow's edge falls off over 2-8% of the picture's shorter side.
const SHARPNESS: f32 = 0.7;
/// An edge shows the step, the same way round, on at least this share of the rows it crosses
/// where enough of the table shows to measure it (the page's rules, or a stroke near the edge,
/// cross some).
const MIN_RUN: f32 = 0.85;
/// ... and enough of the table shows on at least this share of the rows: a page turned a few
/// degrees leaves the picture along its edge, and the sliver of table beside it, a few pixels
/// wide, is read as ink unless the edge is followed where the table is wide enough to see.
const MIN_MEASURED: f32 = 0.4;
/// Nearer the picture's side than this, the table is too narrow to measure its level past the
/// edge's blur (pixels of the search size).
const MEASURABLE: usize = *FAR.start() + 1;
/// Directions tried, per degree of turn: the edge is fitted along the middle half of the side,
/// and at 1 per degree its ends strayed up to 4 px out of the paint on a 1,000-px picture.
const STEPS_PER_DEGREE: f32 = 4.0;
/// Past an edge, and this many pixels into the page (and two more pixels of the search size,
/// which places the edge to within one), the planes are painted over: the edge itself,
/// anti-aliased and blurred, is neither paper nor table.
const INTO_PAGE: f32 = 3.0;
/// Each pixel painted over takes the median of this many pixels of paper inside the edge, on the
/// line through it square to the edge: a grid line along the edge is one or two of them.
const PAPER_SAMPLE: usize = 9;

/// A side of the picture, and of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Top,
    Right,
    Bottom,
}

impl Side {
    const ALL: [Side; 4] = [Side::Left, Side::Top, Side::Right, Side::Bottom];
}

/// Where to paint over past an edge of the page, in the planes' pixels: how far in from `side`
/// at the middle of the side (`offset`), and how much further in per pixel along the side
/// (`slope`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Edge {
    side: Side,
    offset: f32,
    slope: f32,
}

impl Edge {
    /// How far in from its side the painted line lies at pixel `t` along a side `along` long.
    fn at(&self, t: usize, along: usize) -> f32 {
        self.offset + (t as f32 - along as f32 / 2.0) * self.slope
    }

    /// The pixels of row `t` of a side `along` long and `across` deep (counted in from the
    /// side) that lie past the painted line moved `margin` pixels further in.
    fn past(&self, t: usize, along: usize, across: usize, margin: f32) -> std::ops::Range<usize> {
        0..((self.at(t, along) + margin).ceil().max(0.0) as usize).min(across)
    }

    /// Calls `f` with the index of each pixel of a `w` x `h` picture that lies past the painted
    /// line moved `margin` pixels further in.
    fn each_past(&self, w: usize, h: usize, margin: f32, mut f: impl FnMut(usize)) {
        let (across, along) = extent(self.side, w, h);
        for t in 0..along {
            for a in self.past(t, along, across, margin) {
                f(pixel(self.side, w, h, a, t));
            }
        }
    }
}

/// Pixel `(across, along)` of a side's view of a `w` x `h` picture: `across` counts in from the
/// side, `along` runs along it.
fn pixel(side: Side, w: usize, h: usize, across: usize, along: usize) -> usize {
    let (x, y) = match side {
        Side::Left => (across, along),
        Side::Right => (w - 1 - across, along),
        Side::Top => (along, across),
        Side::Bottom => (along, h - 1 - across),
    };
    y * w + x
}

/// The lengths across and along a side of a `w` x `h` picture.
fn extent(side: Side, w: usize, h: usize) -> (usize, usize) {
    match side {
        Side::Left | Side::Right => (w, h),
        Side::Top | Side::Bottom => (h, w),
    }
}

/// The page's edges found in a picture, to paint over what lies past them in its planes at the
/// size they were found at or another.
#[derive(Debug, Clone, PartialEq)]
pub struct PageEdges {
    edges: Vec<Edge>,
    /// The width of the planes they were found in.
    width: usize,
}

impl PageEdges {
    /// The page's edges in `planes` (none when the page fills the picture).
    pub fn find(planes: &Planes) -> Self {
        PageEdges {
            edges: page_edges(planes),
            width: planes.width,
        }
    }

    /// The edges in the pixels of the same picture's planes or ink map `width` wide.
    fn at_width(&self, width: usize) -> Vec<Edge> {
        let scale = width as f32 / self.width as f32;
        self.edges
            .iter()
            .map(|e| Edge {
                offset: e.offset * scale,
                ..*e
            })
            .collect()
    }

    /// Clears the ink in `map` (the same picture's, at any size) past the edges and
    /// [`INTO_PAGE`] pixels further in: painting over the table leaves a step wherever the paper
    /// beside an edge is not even along it (a shadow's edge crossing the page's, or running
    /// beside it), which the ink map may take for a stroke; and writing is on the page.
    pub fn clear_past(&self, map: &mut InkMap) {
        let (w, h) = (map.width, map.height);
        let edges = self.at_width(w);
        if edges.is_empty() {
            return;
        }
        let margin = INTO_PAGE * w as f32 / self.width as f32;
        for edge in &edges {
            edge.each_past(w, h, margin, |i| map.ink[i] = 0.0);
        }
    }

    /// Paints over whatever lies past the edges in `planes` (the same picture's, at any size),
    /// with the paper just inside each edge.
    pub fn paint_over(&self, planes: &mut Planes) {
        let edges = self.at_width(planes.width);
        if edges.is_empty() {
            return;
        }
        let (w, h) = (planes.width, planes.height);
        // What may be sampled as paper: what lies inside every edge, and what is painted already.
        let mut usable = vec![true; w * h];
        for edge in &edges {
            edge.each_past(w, h, 0.0, |i| usable[i] = false);
        }
        // Rows first, then columns: a corner of the table past two edges takes the paper painted
        // beside it, never the other edge's blur.
        let across_rows = |e: &&Edge| matches!(e.side, Side::Left | Side::Right);
        for edge in edges.iter().filter(across_rows) {
            fill_past(planes, edge, &mut usable);
        }
        for edge in edges.iter().filter(|e| !across_rows(e)) {
            fill_past(planes, edge, &mut usable);
        }
    }
}

/// The page's edges found in `planes`, in their pixels.
fn page_edges(planes: &Planes) -> Vec<Edge> {
    if planes.width.min(planes.height) < MIN_SIDE {
        return Vec::new();
    }
    let factor = planes.width.max(planes.height).div_ceil(SEARCH_SIDE).max(1);
    let small = planes.shrunk(factor);
    Side::ALL
        .into_iter()
        .filter_map(|side| edge_on(&small, side))
        .map(|e| Edge {
            offset: (e.offset + 2.5) * factor as f32 + INTO_PAGE,
            ..e
        })
        .collect()
}

/// The page's edge on `side` of `planes`, if it shows: the straight line, within
/// [`EDGE_REACH`] of the side, along which the most rows step sharply from one thing to another
/// ([`step_at`]), when at least [`MIN_RUN`] of them do, the same way round, of the rows where
/// it lies far enough from the side to be measured, at least [`MIN_MEASURED`] of them.
fn edge_on(planes: &Planes, side: Side) -> Option<Edge> {
    let (w, h) = (planes.width, planes.height);
    let (across, along) = extent(side, w, h);
    let reach = (EDGE_REACH * across as f32) as usize;
    let rows = (ALONG.start * along as f32) as usize..(ALONG.end * along as f32) as usize;
    if reach < 8 || rows.len() < 8 {
        return None;
    }
    // Each row's step at each place across, once: the lines tried below only add them up.
    let steps: Vec<Vec<f32>> = rows
        .clone()
        .map(|t| {
            // A few pixels past the reach too: a turned line within it at the middle ends there.
            (0..reach + 8)
                .map(|i| step_at(planes, side, i, t))
                .collect()
        })
        .collect();
    // Most pictures have no table: too few rows step anywhere for any line to run.
    let stepping = steps
        .iter()
        .filter(|row| row.iter().any(|&v| v != 0.0))
        .count();
    if (stepping as f32) < MIN_RUN * MIN_MEASURED * rows.len() as f32 {
        return None;
    }
    let middle = (rows.start + rows.end) as f32 / 2.0;
    let turns = (MAX_TURN_DEGREES * STEPS_PER_DEGREE) as i32;
    // The line with the longest run, and of those (a sharp edge runs the whole way at several
    // turns and offsets a pixel apart) the one through the sharpest steps.
    let mut best: Option<((usize, f32), Edge)> = None;
    for turn in -turns..=turns {
        let slope = (turn as f32 / STEPS_PER_DEGREE).to_radians().tan();
        for offset in 0..reach {
            let (mut brighter, mut darker) = ((0, 0.0), (0, 0.0));
            let mut measured = 0;
            for (row, t) in steps.iter().zip(rows.clone()) {
                let i = (offset as f32 + (t as f32 - middle) * slope).round();
                if i < MEASURABLE as f32 {
                    continue;
                }
                measured += 1;
                match row.get(i as usize) {
                    Some(&v) if v > 0.0 => brighter = (brighter.0 + 1, brighter.1 + v),
                    Some(&v) if v < 0.0 => darker = (darker.0 + 1, darker.1 - v),
                    _ => {}
                }
            }
            let run = if brighter.0 >= darker.0 {
                brighter
            } else {
                darker
            };
            if measured as f32 >= MIN_MEASURED * rows.len() as f32
                && run.0 as f32 >= MIN_RUN * measured as f32
                && best.is_none_or(|(b, _)| run > b)
            {
                let offset = offset as f32 - (middle - along as f32 / 2.0) * slope;
                best = Some((
                    run,
                    Edge {
                        side,
                        offset,
                        slope,
                    },
                ));
            }
        }
    }
    best.map(|(_, e)| e)
}

/// Whether `planes` step sharply at `across` on row `along` of `side`'s view ([`MIN_STEP`],
/// [`SHARPNESS`]): how sharply (the step across the edge's own two pixels, a share of the
/// brighter level), above 0 where the inside (further from the side) is the brighter, below 0
/// where it is the darker; 0 for no step.
fn step_at(planes: &Planes, side: Side, across: usize, along: usize) -> f32 {
    let (w, h) = (planes.width, planes.height);
    let (length, _) = extent(side, w, h);
    // Outside, what there is of the table: near the picture's side, a strip of it narrower than
    // FAR, down to 2 pixels past the edge's own.
    if across < MEASURABLE || across + FAR.end() + 1 >= length {
        return 0.0;
    }
    let at = |plane: &[f32], a: usize| plane[pixel(side, w, h, a, along)];
    // Most places hold no sharp step at all: across the edge's own pixels it is at least
    // SHARPNESS * MIN_STEP of the brighter level, which is at least 0.8 of the brightest of
    // those pixels (each lies within a quarter of the step of the two levels).
    let sharp = planes.colour.iter().any(|plane| {
        let [a, b, c, d] = [across - 1, across, across + 1, across + 2].map(|i| at(plane, i));
        let step = (c - a).abs().max((d - b).abs());
        step >= 0.8 * SHARPNESS * MIN_STEP * a.max(b).max(c).max(d)
    });
    if !sharp {
        return 0.0;
    }
    // The median, so that a printed line or a stroke beside the edge does not count.
    let median = |values: &mut [f32]| {
        values.sort_unstable_by(f32::total_cmp);
        values[values.len() / 2]
    };
    let mut best = (0.0f32, 0.0f32);
    let mut sample = [0.0f32; FAR_SAMPLES];
    for plane in &planes.colour {
        for (v, d) in sample.iter_mut().zip(FAR) {
            *v = at(plane, across + d);
        }
        let inside = median(&mut sample);
        let mut n = 0;
        for (v, d) in sample.iter_mut().zip(FAR.filter(|&d| d <= across)) {
            *v = at(plane, across - d);
            n += 1;
        }
        let outside = median(&mut sample[..n]);
        let far = inside - outside;
        // The edge's two pixels: either side of `across`, or `across` and the next, where
        // the edge falls within a pixel; each between the two sides' levels, as across an
        // edge, not darker or lighter than both, as a printed line beside a shadow's soft edge
        // is.
        let (low, high) = (inside.min(outside), inside.max(outside));
        let between = |v: f32| v >= low - 0.25 * far.abs() && v <= high + 0.25 * far.abs();
        let near = [(across - 1, across + 1), (across, across + 2)]
            .into_iter()
            .map(|(o, i)| (at(plane, o), at(plane, i)))
            .filter(|&(o, i)| between(o) && between(i))
            .map(|(o, i)| i - o)
            .max_by(|a, b| (a * far.signum()).total_cmp(&(b * far.signum())))
            .unwrap_or(0.0);
        let share = far.abs() / inside.max(outside).max(1e-3);
        if share >= MIN_STEP
            && near * far > 0.0
            && near.abs() >= SHARPNESS * far.abs()
            && share > best.0
        {
            best = (share, near / high.max(1e-3));
        }
    }
    best.1
}

/// Paints `planes` up to `edge` with the paper inside it: each pixel past the edge takes the
/// median of the first [`PAPER_SAMPLE`] `usable` pixels inside the edge on the line through it
/// square to the edge, the page's own direction, so that a rule or a grid line that meets the
/// edge runs on straight across what is painted. A pixel whose line holds too few (it runs past
/// another edge first) is left for that edge. What is painted becomes usable.
fn fill_past(planes: &mut Planes, edge: &Edge, usable: &mut [bool]) {
    let (w, h) = (planes.width, planes.height);
    let (across, along) = extent(edge.side, w, h);
    let norm = (1.0 + edge.slope * edge.slope).sqrt();
    // Square to the edge, into the page, in (across, along): (1, -slope) / norm.
    let (da, dt) = (1.0 / norm, -edge.slope / norm);
    // Each pixel painted, and the pixels whose median it takes (PAPER_SAMPLE each, in a row).
    let (mut painted, mut sources) = (Vec::new(), Vec::new());
    for t in 0..along {
        for a in edge.past(t, along, across, 0.0) {
            let past = (edge.at(t, along) - a as f32) / norm;
            let found = sources.len();
            sources.extend(
                (0..3 * PAPER_SAMPLE)
                    .map_while(|k| {
                        let d = past + 1.0 + k as f32;
                        // Near the picture's ends along the edge, the line is held inside it.
                        let st = (t as f32 + d * dt).clamp(0.0, (along - 1) as f32);
                        let sa = a as f32 + d * da;
                        (sa < across as f32)
                            .then(|| pixel(edge.side, w, h, sa as usize, st as usize))
                    })
                    .filter(|&i| usable[i])
                    .take(PAPER_SAMPLE),
            );
            if sources.len() - found == PAPER_SAMPLE {
                painted.push(pixel(edge.side, w, h, a, t));
            } else {
                sources.truncate(found);
            }
        }
    }
    let mut sample = [0.0f32; PAPER_SAMPLE];
    for plane in planes.colour.iter_mut().chain(planes.alpha.iter_mut()) {
        for (&i, from) in painted.iter().zip(sources.chunks_exact(PAPER_SAMPLE)) {
            for (v, &j) in sample.iter_mut().zip(from) {
                *v = plane[j];
            }
            sample.sort_by(f32::total_cmp);
            plane[i] = sample[PAPER_SAMPLE / 2];
        }
    }
    for &i in &painted {
        usable[i] = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finds the page's edges in `planes` and paints over past them; how many there were.
    fn paint(planes: &mut Planes) -> usize {
        let edges = PageEdges::find(planes);
        edges.paint_over(planes);
        edges.edges.len()
    }

    /// A `w` x `h` grey picture (one plane) of paper 0.9 with table 0.35 past `left` pixels on
    /// the left (0 for none), a shadow (0.55 of the light) past `shadow` with a penumbra of
    /// `soft` pixels, and a dark vertical stroke 2 px wide at x = `stroke`.
    fn picture(
        w: usize,
        h: usize,
        left: usize,
        shadow: Option<(f32, f32)>,
        stroke: usize,
    ) -> Planes {
        let mut plane = vec![0.0; w * h];
        for y in 0..h {
            for x in 0..w {
                let mut v = if x < left { 0.35 } else { 0.9 };
                if (stroke..stroke + 2).contains(&x) && (h / 3..2 * h / 3).contains(&y) {
                    v = 0.2;
                }
                if let Some((at, soft)) = shadow {
                    let t = ((x as f32 - at) / soft + 0.5).clamp(0.0, 1.0);
                    v *= 1.0 - 0.45 * (1.0 - t);
                }
                plane[y * w + x] = v;
            }
        }
        Planes {
            width: w,
            height: h,
            colour: vec![plane],
            alpha: None,
        }
    }

    #[test]
    fn a_table_past_the_page_s_edge_is_painted_over_with_paper() {
        let mut planes = picture(300, 200, 40, None, 150);
        assert_eq!(paint(&mut planes), 1);
        let plane = &planes.colour[0];
        assert!(plane.iter().step_by(7).all(|&v| v == 0.9 || v == 0.2));
        // The stroke stays.
        assert_eq!(plane[100 * 300 + 150], 0.2);
    }

    #[test]
    fn ink_past_the_edge_and_just_inside_it_is_cleared_and_the_page_s_is_kept() {
        let planes = picture(300, 200, 40, None, 150);
        let edges = PageEdges::find(&planes);
        let mut map = InkMap::new(300, 200);
        map.ink.fill(1.0);
        edges.clear_past(&mut map);
        // At the half size the reader may look at too, the same.
        let mut half = InkMap::new(150, 100);
        half.ink.fill(1.0);
        edges.clear_past(&mut half);
        // Cleared up to the painted line and INTO_PAGE pixels further in (at either size), and
        // not a pixel beyond.
        let painted = edges.edges[0].offset;
        for (map, scale) in [(&map, 1.0), (&half, 0.5)] {
            let row = &map.ink[50 * map.width..51 * map.width];
            let cleared = ((painted + INTO_PAGE) * scale).ceil() as usize;
            assert!(row[..cleared].iter().all(|&v| v == 0.0), "{row:?}");
            assert!(row[cleared + 1..].iter().all(|&v| v == 1.0), "{row:?}");
            assert!(
                painted * scale >= 40.0 * scale,
                "the table itself is cleared"
            );
        }
    }

    #[test]
    fn a_page_filling_the_picture_a_stroke_and_a_shadow_s_soft_edge_are_no_page_edges() {
        let mut plain = picture(300, 200, 0, None, 30);
        let before = plain.colour.clone();
        assert_eq!(paint(&mut plain), 0);
        assert_eq!(plain.colour, before);
        // A shadow's edge near the side, 8 px soft (2.7% of the shorter side).
        let mut shaded = picture(300, 200, 0, Some((40.0, 8.0)), 150);
        assert_eq!(paint(&mut shaded), 0);
    }

    /// A `w` x `h` page (0.85) on a table (0.3) past a line `top` px in from the left at the
    /// top and `bottom` px in at the bottom (below 0: the edge leaves the picture).
    fn turned(w: usize, h: usize, top: f32, bottom: f32) -> Planes {
        let mut plane = vec![0.0; w * h];
        for y in 0..h {
            let edge = top + (bottom - top) * y as f32 / h as f32;
            for x in 0..w {
                plane[y * w + x] = if (x as f32) < edge { 0.3 } else { 0.85 };
            }
        }
        Planes {
            width: w,
            height: h,
            colour: vec![plane],
            alpha: None,
        }
    }

    #[test]
    fn a_turned_edge_is_followed() {
        // The table past a line 30 px in at the top, 60 px in at the bottom (8.5 degrees: too
        // far turned) and 30 to 45 px (4.3 degrees).
        for (bottom, found) in [(60.0, false), (45.0, true)] {
            let mut planes = turned(300, 200, 30.0, bottom);
            assert_eq!(paint(&mut planes) == 1, found, "{bottom}");
            if found {
                assert!(planes.colour[0].iter().all(|&v| v == 0.85));
            }
        }
    }

    #[test]
    fn a_sliver_of_table_that_leaves_the_picture_is_painted_over_where_it_is_too_narrow_to_see() {
        // 14 px of table at the top, none from three quarters of the way down (5.3 degrees).
        // Along the middle half of the side, the strip is wide enough to measure on 57% of
        // the rows and under 4 px on the rest.
        let mut planes = turned(300, 200, 14.0, -14.0 / 3.0);
        assert_eq!(paint(&mut planes), 1);
        assert!(planes.colour[0].iter().all(|&v| v == 0.85));
        // A sliver narrower still, wide enough to measure on a quarter of those rows, is no
        // edge found: so short a step may be anything.
        let planes = turned(300, 200, 6.0, -2.0);
        assert_eq!(PageEdges::find(&planes).edges, vec![]);
    }
}
