//! Finding the digits in an ink map: connected strokes, specks dropped, the pieces of a broken
//! stroke put back together, groups wide enough to be touching digits offered both whole and
//! cut apart, left to right.

use serde::Serialize;

use crate::ink::InkMap;
use crate::stroke;

/// A rectangle in pixels: left, top, width, height. Serializes as `[x, y, w, h]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BBox {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Serialize for BBox {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        [self.x, self.y, self.w, self.h].serialize(s)
    }
}

impl BBox {
    fn right(&self) -> u32 {
        self.x + self.w
    }

    fn bottom(&self) -> u32 {
        self.y + self.h
    }

    fn union(&self, other: &BBox) -> BBox {
        let (x, y) = (self.x.min(other.x), self.y.min(other.y));
        let (r, b) = (
            self.right().max(other.right()),
            self.bottom().max(other.bottom()),
        );
        BBox {
            x,
            y,
            w: r - x,
            h: b - y,
        }
    }

    /// Columns shared by the two boxes.
    fn x_overlap(&self, other: &BBox) -> u32 {
        self.right()
            .min(other.right())
            .saturating_sub(self.x.max(other.x))
    }

    /// Empty columns between the two boxes (0 when they overlap).
    fn x_gap(&self, other: &BBox) -> u32 {
        self.x
            .max(other.x)
            .saturating_sub(self.right().min(other.right()))
    }

    /// Empty rows between the two boxes (0 when they overlap).
    fn y_gap(&self, other: &BBox) -> u32 {
        self.y
            .max(other.y)
            .saturating_sub(self.bottom().min(other.bottom()))
    }

    /// Whether the box is a flat dash ([`DASH_ASPECT`]).
    fn is_dash(&self) -> bool {
        self.w >= DASH_ASPECT * self.h
    }

    /// Whether the two boxes may hold pieces of one digit as far as their rows go: a flat dash
    /// (a 5's flag, a 7's bar) sits at most [`DASH_GAP`] of the other's height below it, twice
    /// that above. Other pieces may be further apart, where a removed rule cut a stroke.
    fn stacked_close(&self, other: &BBox) -> bool {
        let dash_gap = |dash: &BBox, piece: &BBox| {
            let above = dash.bottom() <= piece.y;
            let gap = if above { 2.0 * DASH_GAP } else { DASH_GAP };
            !dash.is_dash() || dash.y_gap(piece) as f32 <= gap * piece.h as f32
        };
        dash_gap(self, other) && dash_gap(other, self)
    }
}

/// One digit's ink, cropped to its box, with every pixel that belongs to something else zeroed.
#[derive(Debug, Clone, PartialEq)]
pub struct Glyph {
    /// Where it sits in the ink map.
    pub bbox: BBox,
    /// `bbox.w * bbox.h` ink values, row-major.
    pub ink: Vec<f32>,
}

/// One group of ink in a number: a digit, or a group wide enough to be touching digits.
///
/// Whether a wide group is one digit or several, shape alone cannot tell: a zero written wide
/// and two touching ones are both a wide ring with a thin waist. So both readings are kept and
/// the caller, who has a model, picks the one the model reads more confidently
/// ([`Segment::choose`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Segment<G> {
    Digit(G),
    Wide { whole: G, pieces: Vec<G> },
}

impl<G> Segment<G> {
    /// The same segment with `f` applied to every glyph.
    pub fn map<H>(&self, mut f: impl FnMut(&G) -> H) -> Segment<H> {
        match self {
            Segment::Digit(g) => Segment::Digit(f(g)),
            Segment::Wide { whole, pieces } => Segment::Wide {
                whole: f(whole),
                pieces: pieces.iter().map(f).collect(),
            },
        }
    }

    /// Every glyph the segment offers, the whole first.
    pub fn candidates(&self) -> impl Iterator<Item = &G> {
        let (first, rest) = match self {
            Segment::Digit(g) => (g, &[][..]),
            Segment::Wide { whole, pieces } => (whole, &pieces[..]),
        };
        std::iter::once(first).chain(rest)
    }

    /// The digits this segment stands for, given `confidence` (0-1) for each glyph: a wide group
    /// is cut when its pieces are read, on average (geometric mean), more confidently than the
    /// whole.
    pub fn choose(self, mut confidence: impl FnMut(&G) -> f32) -> Vec<G> {
        match self {
            Segment::Digit(g) => vec![g],
            Segment::Wide { whole, pieces } => {
                let whole_log = confidence(&whole).max(f32::MIN_POSITIVE).ln();
                let pieces_log = pieces
                    .iter()
                    .map(|p| confidence(p).max(f32::MIN_POSITIVE).ln())
                    .sum::<f32>()
                    / pieces.len().max(1) as f32;
                if pieces.is_empty() || pieces_log <= whole_log {
                    vec![whole]
                } else {
                    pieces
                }
            }
        }
    }
}

/// An 8-connected region of nonzero ink.
#[derive(Debug, Clone)]
struct Component {
    bbox: BBox,
    mass: f32,
    /// How many of its pixels are off the page's printed lines ([`InkMap::on_lines`]).
    off_lines: usize,
}

/// Two pieces that share at least this fraction of the narrower one's columns are one digit.
/// Neighbouring digits hardly share any: of some 30,000 pairs in the numbers read right on the
/// six sets of docs/photo-reader-notes.md, one pair shared 46% of the narrower's columns (and
/// is read right at 0.4 too), four 10-24%, the rest under 10%. A 6 whose loop the pen left
/// apart from its stem shares 47-49%; at 0.5 it was read as a 1 and a 0 or a 9. 0.3 and 0.4
/// read the same on those sets.
const SHARED_COLUMNS: f32 = 0.4;
/// Specks lighter than this fraction of the heaviest stroke are noise (a "1" weighs about a
/// quarter of an "8"; salt noise and JPEG halos weigh under 1%).
const SPECK_MASS: f32 = 0.04;
/// Specks shorter than this fraction of the picture's longer side are not strokes, however
/// heavy the others are: on a blank page the leftovers of a rule, a fibre or a JPEG ringing dot
/// are all there is, and must not be read as a digit. (A digit is at least a few percent of a
/// photo across, and at least half of a cropped picture.)
const SPECK_EXTENT: f32 = 0.02;
/// Writing has a stroke at least this long, as a fraction of the picture's longer side (a
/// digit in a photo is several percent of it across, and most of a cropped picture).
const ANCHOR_EXTENT: f32 = 0.04;
/// A line at most this many pixels thick (and at least 8 times as long) along the picture's
/// edge is the page's edge or what is left of a printed line the edge cuts, not writing.
const EDGE_LINE_WIDTH: u32 = 4;
/// A component this many times wider than high is a flat dash: a rule's stub, or a digit's bar.
const DASH_ASPECT: u32 = 4;
/// A group at least this many times as high as wide is a straight line, not a "1", when it is
/// also far taller than the line's digits.
const RULE_ASPECT: f32 = 8.0;
/// A flat dash that is a piece of a digit is at most this fraction of the digit's height below
/// it, or twice that above it (a 5's flag); further away, a dash that shares its columns is
/// something else (what a shadow's edge or the page's edge left below the line).
const DASH_GAP: f32 = 0.35;
/// Touching digits are suspected when a group is this many line heights wide (MNIST digits are
/// at most 1.0 wide, two joined ones 1.3 and more); a lone group needs more, since the line
/// height is then its own.
const JOINED_WIDTH: f32 = 1.25;
const JOINED_WIDTH_ALONE: f32 = 1.5;
/// A cut of a wide group is into digits only if every piece is at least this fraction of the
/// line's height.
const PIECE_HEIGHT: f32 = 0.5;
/// Neighbouring groups whose ink comes this close (a fraction of the line height) may be one
/// broken digit: a ruled line removed where a stroke ran along it leaves a gap of the rule's
/// width, a pen skip a little more.
const BROKEN_GAP: f32 = 0.04;
/// A "(" and a ")" whose ink comes this close (a fraction of the line height), together no
/// wider than [`ONE_DIGIT_WIDTH`], may be the two sides of one loop the pen left open at the
/// top and the bottom (a 0 written so): both readings are offered. Bowed sides only
/// ([`ARC_BULGE`]): a "1" beside another digit is straight, and offered whole the pair is read
/// as some third digit (a "4" for "11"), more confidently than the two. On the four sets of
/// `scripts/photo-accuracy.sh 0 100 0 SEED` (seeds 5, 11, 23, 31), 0.15 and 0.25 mend the same
/// two zeros and lose nothing; without the bow, five numbers with a 1 were read short.
const ARC_GAP: f32 = 0.15;
/// How far a side of an open loop bows out at its middle, as a fraction of its height
/// ([`bulge`]); 0.03 let a "1" beside a "6" through, 0.06 and 0.1 did not.
const ARC_BULGE: f32 = 0.06;
/// The widest one digit is, in line heights (MNIST's are at most 1.0 wide).
const ONE_DIGIT_WIDTH: f32 = 1.0;
/// A group under this fraction of the line's height is a fragment of a digit, not a digit.
const FRAGMENT_HEIGHT: f32 = 0.5;
/// A fragment belongs to a digit at most this fraction of the line's height away across; further
/// off, it is a mark of its own.
const FRAGMENT_REACH: f32 = 0.15;
/// A flag (a flat fragment high on the line) may stand further off: a 5's flag drawn on its own
/// ends up to a quarter of the height from its stem.
const FLAG_REACH: f32 = 0.3;
/// How much nearer (a fraction of the line's height, on top of half the distance) the digit on
/// a flag's right must be to take it from the digit on its left.
const FLAG_SLACK: f32 = 0.1;
/// Expected width of one digit, in line heights, when deciding how many a joined group holds.
const DIGIT_WIDTH: f32 = 0.85;
/// A cut between touching digits crosses at most this many strokes: digits touch at a point, or
/// where a stroke of one runs into the other. A cut that crosses two or more runs through one wide
/// digit (a 3's arcs, a 2's neck and its base, a 5's bar and its bowl): on the four sets of
/// `scripts/photo-accuracy.sh 0 100 0 SEED` (seeds 5, 11, 23, 31), each of the seven single digits
/// cut in two crossed 2 or 3 there, and no right cut more than 1 (docs/photo-reader-notes.md).
const MAX_CUT_STROKES: usize = 1;
/// Strokes are told apart by their cores, ink stronger than this (a typical stroke is 1): ink
/// as faint as this (a stroke's soft edge, the blur between two digits out of focus, JPEG's
/// ringing around narrow digits written close together) joins the stroke it touches, and two
/// only across a narrow joint ([`MAX_FAINT_GAP`]). Measured without the joint, 0.15 and 0.2
/// read the same numbers of docs/photos.md's sets, 0.1 one fewer, and 0.3 lost one
/// (docs/photo-reader-notes.md).
const STROKE_CORE: f32 = 0.2;
/// ... but two cores that faint ink links across at most this many pixels are one stroke: where
/// a stroke thins (a joint of one of MNIST's digits drawn large, a pen line's narrow turn) its
/// core breaks for a pixel or two. With no joint, a 4 of MNIST's drawn large was read as `11`:
/// the plain pictures of seed 41's numbers read 5 fewer at 0, 2 fewer at 1, none at 2 or 3.
const MAX_FAINT_GAP: u32 = 2;

/// Labels the strokes: 8-connected components of their cores ([`STROKE_CORE`]), each with the
/// fainter ink around it ([`spread_into_faint`]). Returns the label image (0 = paper, `i + 1` =
/// component `i`) and the components.
fn label_components(map: &InkMap) -> (Vec<u32>, Vec<Component>) {
    let w = map.width;
    let core: Vec<bool> = map.ink.iter().map(|&v| v > STROKE_CORE).collect();
    let (mut labels, cores) = stroke::regions(&core, w, map.height);
    let count = spread_into_faint(&mut labels, cores.len() as u32, map);
    // Each component's extent (x0, y0, x1, y1), mass and pixels off the printed lines, in one
    // pass over the labels.
    let mut found = vec![((usize::MAX, usize::MAX, 0, 0), 0.0f32, 0usize); count as usize];
    for (i, &label) in labels.iter().enumerate() {
        if label == 0 {
            continue;
        }
        let ((x0, y0, x1, y1), mass, off_lines) = &mut found[label as usize - 1];
        let (x, y) = (i % w, i / w);
        (*x0, *y0, *x1, *y1) = ((*x0).min(x), (*y0).min(y), (*x1).max(x), (*y1).max(y));
        *mass += map.ink[i];
        *off_lines += usize::from(!map.on_lines.get(i).copied().unwrap_or(false));
    }
    let components = found
        .into_iter()
        .map(|((x0, y0, x1, y1), mass, off_lines)| Component {
            bbox: BBox {
                x: x0 as u32,
                y: y0 as u32,
                w: (x1 - x0 + 1) as u32,
                h: (y1 - y0 + 1) as u32,
            },
            mass,
            off_lines,
        })
        .collect();
    (labels, components)
}

/// Grows each of the `count` labelled cores in `labels` into the fainter ink that touches it,
/// breadth first, so that faint ink between two cores is shared out between them by distance,
/// and joins two cores that faint ink links across at most [`MAX_FAINT_GAP`] pixels; faint ink
/// that touches no core is labelled as components of its own. Returns the number of labels.
fn spread_into_faint(labels: &mut [u32], count: u32, map: &InkMap) -> u32 {
    let (w, h) = (map.width, map.height);
    // Union-find over the cores' labels: two cores a short faint gap apart are one stroke.
    let mut parent: Vec<u32> = (0..=count).collect();
    fn root(parent: &mut [u32], mut a: u32) -> u32 {
        while parent[a as usize] != a {
            parent[a as usize] = parent[parent[a as usize] as usize];
            a = parent[a as usize];
        }
        a
    }
    let mut depth = vec![0u32; labels.len()];
    let mut frontier: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] != 0).collect();
    let mut next = Vec::new();
    let mut d = 0;
    while !frontier.is_empty() {
        d += 1;
        for &i in &frontier {
            let (x, y) = (i % w, i / w);
            for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    let j = ny * w + nx;
                    if labels[j] == 0 {
                        if map.ink[j] != 0.0 {
                            labels[j] = labels[i];
                            depth[j] = d;
                            next.push(j);
                        }
                    } else if labels[j] != labels[i] && depth[i] + depth[j] <= MAX_FAINT_GAP {
                        let (a, b) = (root(&mut parent, labels[i]), root(&mut parent, labels[j]));
                        parent[a.max(b) as usize] = a.min(b);
                    }
                }
            }
        }
        std::mem::swap(&mut frontier, &mut next);
        next.clear();
    }
    // Number the joined cores 1, 2, ... again.
    let mut renumbered = vec![0u32; count as usize + 1];
    let mut joined = 0;
    for a in 1..=count {
        let r = root(&mut parent, a);
        if renumbered[r as usize] == 0 {
            joined += 1;
            renumbered[r as usize] = joined;
        }
        renumbered[a as usize] = renumbered[r as usize];
    }
    let alone: Vec<bool> = (0..labels.len())
        .map(|i| labels[i] == 0 && map.ink[i] != 0.0)
        .collect();
    let (own, areas) = stroke::regions(&alone, w, h);
    for (label, &o) in labels.iter_mut().zip(&own) {
        if o != 0 {
            *label = joined + o;
        } else {
            *label = renumbered[*label as usize];
        }
    }
    joined + areas.len() as u32
}

/// Labels and keeps the components heavy enough to be strokes and large enough to be part of
/// a digit. Writing has at least one stroke of [`ANCHOR_EXTENT`] that is not a flat dash
/// ([`DASH_ASPECT`]) and has at least that many pixels off the page's printed lines (what the
/// line remover leaves of a line, where a shadow's edge or another line crosses it, lies on the
/// line); pieces count only near one, within half its height or the writing's (the median
/// anchor's), whichever is more (a broken stroke's other half, the bar of a 7 come loose),
/// so that what a page leaves behind on its own (the stub of a rule, the corner where two lines
/// of squared paper crossed, a fleck) is not read as a digit.
fn strokes(map: &InkMap) -> (Vec<u32>, Vec<(u32, Component)>) {
    let (labels, components) = label_components(map);
    let side = map.width.max(map.height) as f32;
    let extent = |c: &Component| c.bbox.w.max(c.bbox.h) as f32;
    let heaviest = components
        .iter()
        .filter(|c| extent(c) >= SPECK_EXTENT * side)
        .map(|c| c.mass)
        .fold(0.0, f32::max);
    let (width, height) = (map.width as u32, map.height as u32);
    let hugs_an_edge = |b: &BBox| {
        let line = |thick: u32, long: u32| thick <= EDGE_LINE_WIDTH && long >= 8 * thick;
        (line(b.w, b.h) && (b.x <= 1 || b.right() + 1 >= width))
            || (line(b.h, b.w) && (b.y <= 1 || b.bottom() + 1 >= height))
    };
    let kept: Vec<(u32, Component)> = components
        .into_iter()
        .enumerate()
        .filter(|(_, c)| c.mass >= SPECK_MASS * heaviest && extent(c) >= SPECK_EXTENT * side)
        .filter(|(_, c)| !hugs_an_edge(&c.bbox))
        .map(|(i, c)| (i as u32 + 1, c))
        .collect();
    let anchors: Vec<BBox> = kept
        .iter()
        .filter(|(_, c)| c.off_lines as f32 >= ANCHOR_EXTENT * side)
        .map(|(_, c)| c.bbox)
        .filter(|b| b.w.max(b.h) as f32 >= ANCHOR_EXTENT * side && !b.is_dash())
        .collect();
    // Reach from the writing's height, not the anchor's own: a short anchor (a 2's loop whose
    // upper stroke runs along a printed line) reaches its other half.
    let mut heights: Vec<u32> = anchors.iter().map(|a| a.h).collect();
    heights.sort_unstable();
    let writing_height = heights.get(heights.len() / 2).copied().unwrap_or(0);
    let near_an_anchor = |b: &BBox| {
        anchors.iter().any(|a| {
            let reach = a.h.max(writing_height) / 2;
            b.x <= a.right() + reach
                && a.x <= b.right() + reach
                && b.y <= a.bottom() + reach
                && a.y <= b.bottom() + reach
        })
    };
    let kept = kept
        .into_iter()
        .filter(|(_, c)| near_an_anchor(&c.bbox))
        .collect();
    (labels, kept)
}

/// All the ink of the picture as one glyph (for a picture of a single digit), specks removed.
/// `None` when there is no ink.
pub fn single_glyph(map: &InkMap) -> Option<Glyph> {
    let (labels, kept) = strokes(map);
    let bbox = kept
        .iter()
        .map(|(_, c)| c.bbox)
        .reduce(|a, b| a.union(&b))?;
    let ids: Vec<u32> = kept.iter().map(|(id, _)| *id).collect();
    Some(crop(map, &labels, &ids, bbox))
}

/// The digits of a number written left to right, in reading order. Empty when there is no ink.
pub fn number_glyphs(map: &InkMap) -> Vec<Segment<Glyph>> {
    let (labels, kept) = strokes(map);
    // Groups of component ids with their box and mass, merged while any two share enough of
    // their columns ([`SHARED_COLUMNS`]: the pieces of one digit stack vertically, a 5's flag, a
    // broken 4, or sit one within the other's columns, a 6's loop apart from its stem).
    let mut groups: Vec<(Vec<u32>, BBox, f32)> = kept
        .iter()
        .map(|(id, c)| (vec![*id], c.bbox, c.mass))
        .collect();
    while let Some((a, b)) = find_pair(&groups, |a, b| {
        let overlap = a.x_overlap(b) as f32;
        overlap >= SHARED_COLUMNS * a.w.min(b.w) as f32 && a.stacked_close(b)
    }) {
        merge(&mut groups, a, b);
    }
    if groups.is_empty() {
        return Vec::new();
    }
    // Small fragments next to a digit belong to it (a stroke broken sideways, a 5's flag).
    let first_height = line_height(&groups);
    while let Some((fragment, digit)) = fragment_owner(&groups, first_height) {
        merge(&mut groups, fragment.min(digit), fragment.max(digit));
    }
    let line_height = line_height(&groups);
    // What is still small (under 0.4 of the line's height and 0.3 of it across) is a speck or
    // a short dash near the strokes, not a digit. A flat dash on its own, or a thin line 1.8
    // times the line's height or more, is what a printed line or the page's edge left behind (a
    // digit's own dashes, the flag of a 5 or the bar of a 7, were merged into it above).
    groups.retain(|g| {
        let (w, h) = (g.1.w as f32, g.1.h as f32);
        (h >= 0.4 * line_height || w >= 0.3 * line_height)
            && !g.1.is_dash()
            && !(h >= 1.8 * line_height && w * RULE_ASPECT <= h)
    });
    groups.sort_by_key(|g| g.1.x);
    let joined = if groups.len() > 1 {
        JOINED_WIDTH
    } else {
        JOINED_WIDTH_ALONE
    };
    // Neighbours whose ink nearly touches may be one digit whose stroke was broken (where it ran
    // along a printed line that was removed, or where the pen skipped) or two digits written
    // close: both readings are offered.
    // So may a "(" and a ")" a little further apart that together are one digit wide: the two
    // sides of a loop the pen left open at the top and the bottom.
    let reach = (BROKEN_GAP * line_height).max(2.0) as usize;
    let arc_reach = (ARC_GAP * line_height).max(2.0) as usize;
    let near: Vec<bool> = groups
        .windows(2)
        .map(|pair| {
            let (a, b) = (&pair[0], &pair[1]);
            let close = |gap: usize| {
                a.1.x_gap(&b.1) <= gap as u32 && ink_within(map.width, &labels, a, b, gap)
            };
            close(reach)
                || (a.1.union(&b.1).w as f32 <= ONE_DIGIT_WIDTH * line_height
                    && bulge(map.width, &labels, a) <= -ARC_BULGE
                    && bulge(map.width, &labels, b) >= ARC_BULGE
                    && close(arc_reach))
        })
        .collect();
    let mut segments = Vec::new();
    let mut k = 0;
    while k < groups.len() {
        let (ids, bbox, _) = &groups[k];
        let glyph = crop(map, &labels, ids, *bbox);
        if near.get(k) == Some(&true) {
            let (next_ids, next_box, _) = &groups[k + 1];
            let both: Vec<u32> = ids.iter().chain(next_ids).copied().collect();
            let union = bbox.union(next_box);
            segments.push(Segment::Wide {
                whole: crop(map, &labels, &both, union),
                pieces: vec![glyph, crop(map, &labels, next_ids, *next_box)],
            });
            k += 2;
            continue;
        }
        k += 1;
        // Against the taller of the line and the group itself: a digit written larger than its
        // neighbours is wide for the line but not for itself.
        let height = line_height.max(bbox.h as f32);
        if bbox.w as f32 > joined * height {
            // How many digits it holds, though, is counted in line heights: one digit taller
            // than the rest does not make the others wider.
            let count = ((bbox.w as f32 / (DIGIT_WIDTH * line_height)).round() as usize).max(2);
            let pieces = split_columns(&glyph, count);
            // Touching digits are each about as high as the line; a piece that is not is the
            // long bar of a 5 or the base of a 2 written wide, and the glyph is one digit.
            if pieces.len() > 1
                && pieces
                    .iter()
                    .all(|p| p.bbox.h as f32 >= PIECE_HEIGHT * height)
            {
                segments.push(Segment::Wide {
                    whole: glyph,
                    pieces,
                });
                continue;
            }
        }
        segments.push(Segment::Digit(glyph));
    }
    segments
}

/// How far the middle of group `g`'s ink lies right of the line joining its top and bottom
/// ends, as a fraction of its height: below 0 for a "(", above 0 for a ")", near 0 for a "1".
fn bulge(width: usize, labels: &[u32], g: &(Vec<u32>, BBox, f32)) -> f32 {
    let b = g.1;
    let mean_x = |y0: u32, y1: u32| -> Option<f32> {
        let (mut sum, mut n) = (0.0f32, 0u32);
        for y in y0..y1.max(y0 + 1) {
            for x in b.x..b.right() {
                if g.0.contains(&labels[y as usize * width + x as usize]) {
                    sum += x as f32;
                    n += 1;
                }
            }
        }
        (n > 0).then(|| sum / n as f32)
    };
    let band = (b.h / 6).max(1);
    let (Some(top), Some(mid), Some(bottom)) = (
        mean_x(b.y, b.y + band),
        mean_x(b.y + b.h / 2 - band / 2, b.y + b.h / 2 + band / 2 + 1),
        mean_x(b.bottom() - band, b.bottom()),
    ) else {
        return 0.0;
    };
    (mid - (top + bottom) / 2.0) / b.h.max(1) as f32
}

/// Median height of the groups that weigh at least a fifth of the heaviest.
fn line_height(groups: &[(Vec<u32>, BBox, f32)]) -> f32 {
    let heaviest = groups.iter().map(|g| g.2).fold(0.0, f32::max);
    let mut heights: Vec<u32> = groups
        .iter()
        .filter(|g| g.2 >= 0.2 * heaviest)
        .map(|g| g.1.h)
        .collect();
    heights.sort_unstable();
    heights[heights.len() / 2] as f32
}

/// A fragment (a group under [`FRAGMENT_HEIGHT`] of the line's height `line`) and the group
/// it belongs to, if any is near enough: the one whose columns it shares most, or lies nearest
/// to, within [`FRAGMENT_REACH`] of the line's height across. Rows apart are what a removed
/// rule cut, limited only for dashes ([`BBox::stacked_close`]). A flat fragment in the upper
/// half of a digit beside it is a flag, and may stand further off ([`FLAG_REACH`]): a 5's flag
/// runs right from the top of its stem and often ends closer to the next digit than to its own,
/// so the digit on the left keeps it unless the one on the right is much nearer (then it is the
/// loose bar of a 7 or a 4's arm).
fn fragment_owner(groups: &[(Vec<u32>, BBox, f32)], line: f32) -> Option<(usize, usize)> {
    let small = |b: &BBox| (b.h as f32) < FRAGMENT_HEIGHT * line;
    let centre = |b: &BBox| b.y as f32 + b.h as f32 / 2.0;
    let mut best: Option<(f32, usize, usize)> = None;
    for (f, (_, piece, _)) in groups.iter().enumerate().filter(|(_, g)| small(&g.1)) {
        for (d, (_, other, _)) in groups.iter().enumerate() {
            if d == f || !piece.stacked_close(other) {
                continue;
            }
            let flag = piece.w * 2 >= piece.h * 3 && centre(piece) < centre(other) && !small(other);
            let reach = if flag { FLAG_REACH } else { FRAGMENT_REACH } * line;
            let gap = piece.x_gap(other) as f32;
            if gap > reach {
                continue;
            }
            // Columns shared count against the gap: the fragment over a digit is its own.
            let mut cost = gap - piece.x_overlap(other) as f32;
            if flag && other.x > piece.x {
                cost = 2.0 * cost + FLAG_SLACK * line;
            }
            if best.is_none_or(|(c, _, _)| cost < c) {
                best = Some((cost, f, d));
            }
        }
    }
    best.map(|(_, f, d)| (f, d))
}

fn find_pair(
    groups: &[(Vec<u32>, BBox, f32)],
    joins: impl Fn(&BBox, &BBox) -> bool,
) -> Option<(usize, usize)> {
    (0..groups.len())
        .flat_map(|a| (a + 1..groups.len()).map(move |b| (a, b)))
        .find(|&(a, b)| joins(&groups[a].1, &groups[b].1))
}

/// Whether some ink of group `a` and some of group `b` have at most `gap` paper pixels between
/// them (in x and in y), given the label image of a map `width` wide. Looks only where their
/// boxes, `a`'s grown by the gap, overlap.
fn ink_within(
    width: usize,
    labels: &[u32],
    a: &(Vec<u32>, BBox, f32),
    b: &(Vec<u32>, BBox, f32),
    gap: usize,
) -> bool {
    let reach = gap + 1;
    let height = labels.len() / width.max(1);
    let grown = |v: u32| (v as usize).saturating_sub(reach);
    let (ax0, ay0) = (grown(a.1.x), grown(a.1.y));
    let (ax1, ay1) = (
        (a.1.right() as usize + reach).min(width),
        (a.1.bottom() as usize + reach).min(height),
    );
    let (x0, x1) = (ax0.max(b.1.x as usize), ax1.min(b.1.right() as usize));
    let (y0, y1) = (ay0.max(b.1.y as usize), ay1.min(b.1.bottom() as usize));
    for y in y0..y1 {
        for x in x0..x1 {
            if !b.0.contains(&labels[y * width + x]) {
                continue;
            }
            let (wx0, wx1) = (x.saturating_sub(reach), (x + reach + 1).min(width));
            let (wy0, wy1) = (y.saturating_sub(reach), (y + reach + 1).min(height));
            if (wy0..wy1).any(|yy| {
                labels[yy * width + wx0..yy * width + wx1]
                    .iter()
                    .any(|l| a.0.contains(l))
            }) {
                return true;
            }
        }
    }
    false
}

fn merge(groups: &mut Vec<(Vec<u32>, BBox, f32)>, a: usize, b: usize) {
    let (ids, bbox, mass) = groups.remove(b);
    let target = &mut groups[a];
    target.0.extend(ids);
    target.1 = target.1.union(&bbox);
    target.2 += mass;
}

/// Copies the pixels of components `ids` inside `bbox` into a glyph.
fn crop(map: &InkMap, labels: &[u32], ids: &[u32], bbox: BBox) -> Glyph {
    let mut ink = Vec::with_capacity((bbox.w * bbox.h) as usize);
    for y in bbox.y..bbox.bottom() {
        for x in bbox.x..bbox.right() {
            let i = y as usize * map.width + x as usize;
            ink.push(if ids.contains(&labels[i]) {
                map.ink[i]
            } else {
                0.0
            });
        }
    }
    Glyph { bbox, ink }
}

/// Splits a glyph that holds `pieces` touching digits at the columns with the least ink near
/// the evenly spaced positions, and trims each piece to its own ink. Empty when a cut would
/// cross more than [`MAX_CUT_STROKES`] strokes: the glyph is one wide digit.
fn split_columns(glyph: &Glyph, pieces: usize) -> Vec<Glyph> {
    let (w, h) = (glyph.bbox.w as usize, glyph.bbox.h as usize);
    let column_ink: Vec<f32> = (0..w)
        .map(|x| (0..h).map(|y| glyph.ink[y * w + x]).sum())
        .collect();
    let mut cuts = vec![0];
    for k in 1..pieces {
        let centre = k * w / pieces;
        let reach = (w / (3 * pieces)).max(1);
        let window = centre.saturating_sub(reach).max(cuts[k - 1] + 1)..(centre + reach).min(w - 1);
        let cut = window
            .min_by(|&a, &b| column_ink[a].total_cmp(&column_ink[b]))
            .unwrap_or(centre);
        cuts.push(cut);
    }
    if cuts[1..]
        .iter()
        .any(|&x| strokes_across(glyph, x) > MAX_CUT_STROKES)
    {
        return Vec::new();
    }
    cuts.push(w);
    cuts.windows(2)
        .filter_map(|c| trim(glyph, c[0], c[1]))
        .collect()
}

/// How many strokes column `x` of `glyph` crosses: its runs of pixels at least half a stroke's
/// strength.
fn strokes_across(glyph: &Glyph, x: usize) -> usize {
    let w = glyph.bbox.w as usize;
    let on: Vec<bool> = (0..glyph.bbox.h as usize)
        .map(|y| glyph.ink[y * w + x] >= 0.5)
        .collect();
    usize::from(on.first() == Some(&true)) + on.windows(2).filter(|p| !p[0] && p[1]).count()
}

/// The part of `glyph` in columns `x0..x1`, shrunk to the rows and columns that hold ink.
fn trim(glyph: &Glyph, x0: usize, x1: usize) -> Option<Glyph> {
    let w = glyph.bbox.w as usize;
    let has = |x: usize, y: usize| glyph.ink[y * w + x] > 0.0;
    let h = glyph.bbox.h as usize;
    let cols: Vec<usize> = (x0..x1).filter(|&x| (0..h).any(|y| has(x, y))).collect();
    let rows: Vec<usize> = (0..h).filter(|&y| (x0..x1).any(|x| has(x, y))).collect();
    let (&cx0, &cx1, &ry0, &ry1) = (cols.first()?, cols.last()?, rows.first()?, rows.last()?);
    let mut ink = Vec::with_capacity((cx1 - cx0 + 1) * (ry1 - ry0 + 1));
    for y in ry0..=ry1 {
        ink.extend_from_slice(&glyph.ink[y * w + cx0..=y * w + cx1]);
    }
    Some(Glyph {
        bbox: BBox {
            x: glyph.bbox.x + cx0 as u32,
            y: glyph.bbox.y + ry0 as u32,
            w: (cx1 - cx0 + 1) as u32,
            h: (ry1 - ry0 + 1) as u32,
        },
        ink,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ink map drawn from ASCII art: `#` is ink, `+` faint ink (at [`STROKE_CORE`]),
    /// anything else paper.
    fn art(rows: &[&str]) -> InkMap {
        let mut map = InkMap::new(rows[0].len(), rows.len());
        for (y, row) in rows.iter().enumerate() {
            for (x, c) in row.chars().enumerate() {
                map.ink[y * map.width + x] = match c {
                    '#' => 1.0,
                    '+' => STROKE_CORE,
                    _ => 0.0,
                };
            }
        }
        map
    }

    fn corners(g: &Glyph) -> [u32; 4] {
        [g.bbox.x, g.bbox.y, g.bbox.w, g.bbox.h]
    }

    /// The boxes of segments that must each be one digit.
    fn boxes(segments: &[Segment<Glyph>]) -> Vec<[u32; 4]> {
        segments
            .iter()
            .map(|s| match s {
                Segment::Digit(g) => corners(g),
                wide => panic!("expected one digit, got {:?}", wide.map(corners)),
            })
            .collect()
    }

    #[test]
    fn separate_strokes_are_separate_digits_in_reading_order() {
        let map = art(&[
            "..........",
            ".##...#...",
            ".##...#...",
            ".##...#...",
            ".##...#...",
            "..........",
        ]);
        assert_eq!(boxes(&number_glyphs(&map)), [[1, 1, 2, 4], [6, 1, 1, 4]]);
    }

    #[test]
    fn pieces_of_a_broken_digit_stay_together_and_specks_go() {
        // A five whose flag is detached, then a one; one stray pixel far away weighs too little.
        let map = art(&[
            "..####.......................",
            ".............................",
            ".##.........##...............",
            ".####.......##...............",
            "....##......##...............",
            "....##......##...............",
            ".####.......##.............#.",
            ".............................",
            ".............................",
            ".............................",
            ".............................",
            ".............................",
        ]);
        let segments = number_glyphs(&map);
        assert_eq!(boxes(&segments), [[1, 0, 5, 7], [12, 2, 2, 5]]);
        // The glyph's crop keeps only its own components' ink.
        let Segment::Digit(five) = &segments[0] else {
            unreachable!("checked above")
        };
        assert_eq!(
            five.ink.iter().sum::<f32>(),
            4.0 + 2.0 + 4.0 + 2.0 + 2.0 + 4.0
        );
    }

    #[test]
    fn touching_digits_are_offered_whole_and_cut_at_the_thinnest_column() {
        // Two 5x7 rings (zeros) joined by a one-pixel bridge: 11 wide and 7 high.
        let map = art(&[
            "#####.#####",
            "#...#.#...#",
            "#...#.#...#",
            "#...###...#",
            "#...#.#...#",
            "#...#.#...#",
            "#####.#####",
        ]);
        let segments: Vec<_> = number_glyphs(&map).iter().map(|s| s.map(corners)).collect();
        assert_eq!(
            segments,
            [Segment::Wide {
                whole: [0, 0, 11, 7],
                pieces: vec![[0, 0, 5, 7], [5, 0, 6, 7]]
            }]
        );
    }

    #[test]
    fn faint_ink_apart_from_strokes_joins_none_and_a_narrow_faint_joint_joins_its_stroke() {
        // Two rings with faint ink all between them (JPEG's ringing around digits written close
        // together), a third with a faint edge on its left, a fourth whose stroke thins to
        // faint ink for a pixel twice, and a bar that does for two pixels. Joined through the
        // faint ink, the first two were one component, and one group.
        let map = art(&[
            ".........................................",
            ".#####+++#####....#####....##+##.........",
            ".#...#+++#...#...+#...#....#...#.........",
            ".#...#+++#...#...+#...#....+...#..##++##.",
            ".#...#+++#...#...+#...#....#...#.........",
            ".#####+++#####....#####....#####.........",
            ".........................................",
        ]);
        let (labels, components) = label_components(&map);
        let boxes: Vec<[u32; 4]> = components
            .iter()
            .map(|c| [c.bbox.x, c.bbox.y, c.bbox.w, c.bbox.h])
            .collect();
        assert_eq!(boxes.len(), 5, "{boxes:?}");
        assert_eq!(boxes[2..], [[17, 1, 6, 5], [27, 1, 5, 5], [34, 3, 6, 1]]);
        let label = |x: usize, y: usize| labels[y * map.width + x];
        // The faint ink beside each of the first two rings is its own; the middle column is
        // shared out between them.
        for y in 1..6 {
            assert_eq!([label(6, y), label(8, y)], [1, 2]);
            assert!([1, 2].contains(&label(7, y)));
        }
        assert_eq!(
            [label(17, 3), label(29, 1), label(27, 3), label(36, 3)],
            [3, 4, 4, 5]
        );
    }

    #[test]
    fn touching_digits_are_counted_in_line_heights_when_one_is_taller() {
        // Three touching rings, the first taller than the line (two rings apart set its
        // height): a cut in two would cross the middle ring twice; three pieces are offered.
        let map = art(&[
            "....................................",
            ".#####..............................",
            ".#...#..............................",
            ".#...#.#####.#####....#####...#####.",
            ".#...#.#...#.#...#....#...#...#...#.",
            ".#...#.#...#.#...#....#...#...#...#.",
            ".#...###...###...#....#...#...#...#.",
            ".#...#.#...#.#...#....#...#...#...#.",
            ".#...#.#...#.#...#....#...#...#...#.",
            ".#####.#####.#####....#####...#####.",
            "....................................",
        ]);
        let segments: Vec<_> = number_glyphs(&map).iter().map(|s| s.map(corners)).collect();
        assert_eq!(
            segments,
            [
                Segment::Wide {
                    whole: [1, 1, 17, 9],
                    pieces: vec![[1, 1, 5, 9], [6, 3, 6, 7], [12, 3, 6, 7]]
                },
                Segment::Digit([22, 3, 5, 7]),
                Segment::Digit([30, 3, 5, 7]),
            ]
        );
    }

    #[test]
    fn the_two_sides_of_a_loop_left_open_are_offered_whole_and_two_ones_are_not() {
        // A zero written as "(" and ")", 20 high: 3 px apart at the top and the bottom, within
        // ARC_GAP's reach (3 px) and beyond BROKEN_GAP's (2 px).
        let mut zero = vec!["....##...##....", "..##.......##..", ".#...........#."];
        zero.extend(["#.............#"; 14]);
        zero.extend([".#...........#.", "..##.......##..", "....##...##...."]);
        let segments: Vec<_> = number_glyphs(&art(&zero))
            .iter()
            .map(|s| s.map(corners))
            .collect();
        assert_eq!(
            segments,
            [Segment::Wide {
                whole: [0, 0, 15, 20],
                pieces: vec![[0, 0, 6, 20], [9, 0, 6, 20]]
            }]
        );
        // Two straight strokes as far apart are two digits.
        let ones = art(&["....#...#......"; 20]);
        assert_eq!(boxes(&number_glyphs(&ones)), [[4, 0, 1, 20], [8, 0, 1, 20]]);
    }

    #[test]
    fn a_wide_group_is_cut_only_when_its_pieces_read_more_confidently() {
        let wide = || Segment::Wide {
            whole: 0.9,
            pieces: vec![0.99, 0.95],
        };
        // Geometric mean of the pieces 0.970 against 0.9: cut.
        assert_eq!(wide().choose(|&p| p), [0.99, 0.95]);
        // A wide zero read at 0.999 stays whole against pieces at 0.99 and 0.95.
        assert_eq!(wide().choose(|&p| if p == 0.9 { 0.999 } else { p }), [0.9]);
        // Confidence 0 (never from a softmax, but possible from a caller) does not produce NaN.
        assert_eq!(wide().choose(|_| 0.0), [0.9]);
        assert_eq!(Segment::Digit(0.5).choose(|_| 0.0), [0.5]);
        assert_eq!(
            wide().candidates().copied().collect::<Vec<_>>(),
            [0.9, 0.99, 0.95]
        );
    }

    #[test]
    fn a_digit_broken_where_a_line_was_removed_is_offered_whole_and_far_digits_are_apart() {
        // A zero 60 high whose ring was cut at the top and bottom (2-pixel gaps, where it ran
        // along two rules), then a one 20 pixels (a third of the height) to its right.
        let map = rectangles(
            200,
            100,
            &[
                [10, 20, 18, 2],
                [10, 20, 2, 60],
                [10, 78, 18, 2],
                [30, 20, 18, 2],
                [46, 20, 2, 60],
                [30, 78, 18, 2],
                [68, 20, 2, 60],
            ],
        );
        let segments: Vec<_> = number_glyphs(&map).iter().map(|s| s.map(corners)).collect();
        assert_eq!(
            segments,
            [
                Segment::Wide {
                    whole: [10, 20, 38, 60],
                    pieces: vec![[10, 20, 18, 60], [30, 20, 18, 60]]
                },
                Segment::Digit([68, 20, 2, 60])
            ]
        );
    }

    #[test]
    fn a_digit_written_larger_than_its_neighbours_is_not_split() {
        // Two short ones, then a zero 9 wide and 8 high: wide for the line (4 high), not for
        // itself.
        let map = art(&[
            "...........#########",
            "...........#.......#",
            "..#...#....#.......#",
            "..#...#....#.......#",
            "..#...#....#.......#",
            "..#...#....#.......#",
            "...........#.......#",
            "...........#########",
        ]);
        assert_eq!(
            boxes(&number_glyphs(&map)),
            [[2, 2, 1, 4], [6, 2, 1, 4], [11, 0, 9, 8]]
        );
    }

    #[test]
    fn a_loop_within_its_stems_columns_is_one_digit_and_a_bar_over_a_neighbour_is_not() {
        // A 6 whose loop the pen left apart from its stem: the loop shares 3 of its 7 columns
        // with the stem's hook, and is more than half the line high, so it is no fragment.
        // Then a 1.
        let six = art(&[
            "................................",
            "....########............#.......",
            "....#...................#.......",
            "....#...................#.......",
            "....#...................#.......",
            "....#....#######........#.......",
            "....#....#.....#........#.......",
            "....#....#.....#........#.......",
            "....#....#.....#........#.......",
            "....#....#.....#........#.......",
            "....#....#######........#.......",
            "................................",
        ]);
        assert_eq!(
            boxes(&number_glyphs(&six)),
            [[4, 1, 12, 10], [24, 1, 1, 10]]
        );
        // A 7 whose bar runs over the next digit's first 3 of 8 columns: two digits.
        let seven = art(&[
            "................................",
            "############....................",
            ".....#..........................",
            ".....#..........................",
            ".....#..........................",
            ".....#...########...............",
            ".....#...#......#...............",
            ".....#...#......#...............",
            ".....#...#......#...............",
            ".....#...#......#...............",
            ".....#...########...............",
            "................................",
        ]);
        assert_eq!(
            boxes(&number_glyphs(&seven)),
            [[0, 1, 12, 10], [9, 5, 8, 6]]
        );
    }

    #[test]
    fn a_digit_drawn_wide_is_not_cut_into_a_digit_and_its_bar() {
        // Two digits 40 high, then a 5 whose top bar runs out 50 to the right: 90 wide, more
        // than two digits' worth, but the cut would leave the bar alone.
        let map = rectangles(
            300,
            100,
            &[
                [10, 30, 3, 40],
                [50, 30, 3, 40],
                [100, 30, 90, 3],
                [100, 30, 3, 20],
                [100, 48, 30, 3],
                [128, 48, 3, 22],
                [100, 68, 30, 3],
            ],
        );
        assert_eq!(
            boxes(&number_glyphs(&map)),
            [[10, 30, 3, 40], [50, 30, 3, 40], [100, 30, 90, 41]]
        );
    }

    #[test]
    fn a_single_wide_digit_is_not_split() {
        // 9 wide, 7 high: wide for a digit, but not two of them.
        let map = art(&[
            "#########",
            "........#",
            ".......#.",
            "......#..",
            ".....#...",
            "....#....",
            "...#.....",
        ]);
        assert_eq!(boxes(&number_glyphs(&map)).len(), 1);
    }

    #[test]
    fn a_wide_digit_is_not_cut_where_the_cut_would_cross_two_strokes() {
        // A 3 drawn twice as wide as high: wide enough to be two digits, but every column
        // near its middle crosses its three bars, where touching digits meet at one stroke.
        let three = art(&[
            "##############",
            ".............#",
            ".............#",
            "##############",
            ".............#",
            ".............#",
            "##############",
        ]);
        let segments: Vec<_> = number_glyphs(&three)
            .iter()
            .map(|s| s.map(corners))
            .collect();
        assert_eq!(segments, [Segment::Digit([0, 0, 14, 7])]);
    }

    /// A `w` x `h` map with ink in the rectangles `[x, y, w, h]`.
    fn rectangles(w: usize, h: usize, parts: &[[usize; 4]]) -> InkMap {
        let mut map = InkMap::new(w, h);
        for &[x, y, pw, ph] in parts {
            for yy in y..y + ph {
                map.ink[yy * w + x..yy * w + x + pw].fill(1.0);
            }
        }
        map
    }

    #[test]
    fn what_printed_lines_and_stray_marks_leave_around_a_number_is_not_a_digit() {
        // On 400x300, two ones 80 high at x 100 and 160 (the line's height is 80), and around
        // them: a flat dash under both, 60 rows below the line (what a shadow's edge or the
        // page's edge left; close enough to the ones to count, too far below to be a piece of
        // either); a short vertical dash between them (30 high, under 0.4 of the line: a mark,
        // not a one); and a thin line 180 high to their right (a rule's remnant).
        let ones = [[100, 100, 6, 80], [160, 100, 6, 80]];
        let clutter = [[90, 240, 90, 3], [130, 130, 3, 30], [220, 40, 4, 180]];
        let parts: Vec<[usize; 4]> = ones.iter().chain(&clutter).copied().collect();
        let segments = number_glyphs(&rectangles(400, 300, &parts));
        assert_eq!(boxes(&segments), [[100, 100, 6, 80], [160, 100, 6, 80]]);
        // A dash just below a digit (4 rows) is still a piece of it, and so are two halves of
        // a digit 25 rows apart (where a removed rule cut its stroke).
        let pieces = [[94, 184, 18, 4], [220, 100, 30, 40], [222, 165, 30, 15]];
        let parts: Vec<[usize; 4]> = ones.iter().chain(&pieces).copied().collect();
        let segments = number_glyphs(&rectangles(400, 300, &parts));
        assert_eq!(
            boxes(&segments),
            [[94, 100, 18, 88], [160, 100, 6, 80], [220, 100, 32, 80]]
        );
    }

    #[test]
    fn what_a_blank_page_leaves_behind_is_not_a_digit() {
        // On 400x300: stubs of rules (flat dashes up to 60 long) and flecks under 4% of the
        // longer side.
        let map = rectangles(
            400,
            300,
            &[
                [20, 40, 60, 2],
                [200, 100, 30, 1],
                [300, 200, 12, 12],
                [100, 250, 3, 14],
            ],
        );
        assert!(single_glyph(&map).is_none());
        assert!(number_glyphs(&map).is_empty());
    }

    #[test]
    fn a_stub_left_on_a_printed_line_is_not_writing_and_a_stroke_crossing_one_is() {
        // On 400x300, a vertical printed line 4 px wide (with its fringe) at x 200 was removed.
        // A stub of it 40 high is left (where a shadow's edge crossed it): on a blank page it
        // is not a digit, though off the line the same stub would be a one. A stroke that
        // crosses the line's band, with the stub it touches, is writing.
        let on_line = |map: &mut InkMap| {
            map.on_lines = (0..map.width * map.height)
                .map(|i| (198..206).contains(&(i % map.width)))
                .collect();
        };
        let mut stub = rectangles(400, 300, &[[200, 100, 4, 40]]);
        assert!(single_glyph(&stub).is_some());
        on_line(&mut stub);
        assert!(single_glyph(&stub).is_none());
        assert!(number_glyphs(&stub).is_empty());
        let mut crossed = rectangles(400, 300, &[[200, 100, 4, 40], [185, 115, 30, 12]]);
        on_line(&mut crossed);
        assert_eq!(
            single_glyph(&crossed).map(|g| g.bbox),
            Some(BBox {
                x: 185,
                y: 100,
                w: 30,
                h: 40
            })
        );
    }

    #[test]
    fn a_piece_on_a_printed_line_belongs_to_a_short_digit_within_the_lines_reach() {
        // On 400x300, two ones 60 high (the line's height), and a digit whose lower part is
        // short (30x20) and whose upper stroke (24 high) runs along a printed line at x 224-231,
        // so that none of it counts as writing on its own; it ends 16 rows above the lower
        // part, beyond half that part's height but within half the line's.
        let mut map = rectangles(
            400,
            300,
            &[
                [100, 100, 4, 60],
                [140, 100, 4, 60],
                [200, 140, 30, 20],
                [226, 100, 4, 24],
            ],
        );
        map.on_lines = (0..map.width * map.height)
            .map(|i| (224..232).contains(&(i % map.width)))
            .collect();
        assert_eq!(
            boxes(&number_glyphs(&map)),
            [[100, 100, 4, 60], [140, 100, 4, 60], [200, 100, 30, 60]]
        );
    }

    #[test]
    fn a_line_along_the_pictures_edge_is_not_a_digit() {
        // On 400x300: a 3-px line down the left edge for 120 rows, a 2-px one along the bottom
        // for 100 columns; then a one written 2 pixels thick 6 pixels from the right edge.
        let edges = rectangles(400, 300, &[[0, 20, 3, 120], [150, 298, 100, 2]]);
        assert!(single_glyph(&edges).is_none());
        assert!(number_glyphs(&edges).is_empty());
        let one = rectangles(400, 300, &[[0, 20, 3, 120], [392, 100, 2, 80]]);
        assert_eq!(boxes(&number_glyphs(&one)), [[392, 100, 2, 80]]);
    }

    #[test]
    fn the_loose_bar_of_a_seven_stays_with_it_and_a_far_fleck_goes() {
        // A stem 60 high, its bar 30 wide two rows above it, a fleck far away.
        let map = rectangles(
            400,
            300,
            &[[150, 52, 30, 2], [175, 56, 3, 60], [350, 250, 10, 10]],
        );
        let glyph = single_glyph(&map).unwrap();
        assert_eq!(
            glyph.bbox,
            BBox {
                x: 150,
                y: 52,
                w: 30,
                h: 64
            }
        );
        assert_eq!(boxes(&number_glyphs(&map)), [[150, 52, 30, 64]]);
    }

    #[test]
    fn a_loose_flag_goes_to_the_five_on_its_left_and_a_loose_bar_to_the_seven_on_its_right() {
        // Ones 80 high. A 5's body 60 high, its flag 10 to its upper right and as close to the
        // one after it: the five keeps it.
        let one = |x: usize| [x, 100, 6, 80];
        let five = [one(40), [100, 120, 40, 60], [150, 100, 30, 8], one(190)];
        assert_eq!(
            boxes(&number_glyphs(&rectangles(400, 300, &five))),
            [[40, 100, 6, 80], [100, 100, 80, 80], [190, 100, 6, 80]]
        );
        // A 7's bar, loose 2 columns left of its stem, and 24 columns (the furthest a flag
        // reaches) right of a one: the seven takes it.
        let seven = [one(70), [100, 100, 26, 8], [128, 100, 6, 80]];
        assert_eq!(
            boxes(&number_glyphs(&rectangles(400, 300, &seven))),
            [[70, 100, 6, 80], [100, 100, 34, 80]]
        );
        // A 7 whose bar and stem a removed rule parted (the stem's foot, alone below it, is a
        // fragment too): the pieces join each other, not the digit on the bar's left, however
        // near it is.
        let parted = [
            [40, 100, 60, 80],
            [110, 100, 60, 16],
            [168, 150, 10, 30],
            [200, 100, 6, 80],
        ];
        assert_eq!(
            boxes(&number_glyphs(&rectangles(400, 300, &parted))),
            [[40, 100, 60, 80], [110, 100, 68, 80], [200, 100, 6, 80]]
        );
    }

    #[test]
    fn single_glyph_takes_all_strokes_and_nothing_is_empty() {
        let map = art(&["#...", "#..#", "...#"]);
        let glyph = single_glyph(&map).unwrap();
        assert_eq!(
            glyph.bbox,
            BBox {
                x: 0,
                y: 0,
                w: 4,
                h: 3
            }
        );
        assert!(single_glyph(&InkMap::new(5, 5)).is_none());
        assert!(number_glyphs(&InkMap::new(5, 5)).is_empty());
    }
}
