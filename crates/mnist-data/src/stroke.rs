//! Stroke geometry on binary grids: the Euclidean distance transform, thinning to a one-pixel
//! skeleton, a stroke's width, connected regions, and redrawing a skeleton with a round pen.
//!
//! Used by `mnist_image::mnist_style` to bring a thin pen line to MNIST's stroke width before it
//! is scaled to 20 pixels (a 1-px line on a 900-px picture would otherwise become a faint trace),
//! by `mnist_image::synth::photo` to turn an MNIST digit into a thin pen line, by
//! [`crate::augment`] to redraw training digits the way the first of these redraws a photo's, and
//! by `mnist_image::segment` to label the ink of a whole picture ([`regions`], linear in its
//! cells). Thinning runs on glyph-sized grids only, so plain loops are fast enough; the
//! `imageproc` crate has a distance transform but no thinning, and would bring nalgebra and a
//! third `rand` into the workspace for one 40-line function.

/// MNIST's median stroke width in pixels of the 20-pixel box its digits are scaled to, by
/// `mnist_image::mnist_style::stroke_width` over the first 10,000 training digits (`cargo run
/// --release -p mnist-image --example mnist_stroke_width`: 2.91; its 1st percentile is 1.73).
pub const MNIST_STROKE_WIDTH: f32 = 2.9;

/// Ink at least this strong (of the strongest, 0-1) is stroke where a pen line is measured or
/// thinned.
pub const PEN_STROKE_INK: f32 = 0.35;

/// Squared Euclidean distance from every cell to the nearest `true` cell of `seeds` (`w` x `h`,
/// row-major); `f32::INFINITY` everywhere when there is none. Felzenszwalb and Huttenlocher's
/// two-pass lower envelope of parabolas, exact and linear in the number of cells.
pub fn squared_distance(seeds: &[bool], w: usize, h: usize) -> Vec<f32> {
    const FAR: f32 = 1e20;
    let mut d: Vec<f32> = seeds.iter().map(|&s| if s { 0.0 } else { FAR }).collect();
    let mut line = Vec::new();
    let mut out = Vec::new();
    let mut scratch = (Vec::new(), Vec::new());
    // Columns, then rows of the column result.
    for x in 0..w {
        line.clear();
        line.extend((0..h).map(|y| d[y * w + x]));
        lower_envelope(&line, &mut out, &mut scratch);
        for y in 0..h {
            d[y * w + x] = out[y];
        }
    }
    for y in 0..h {
        line.clear();
        line.extend_from_slice(&d[y * w..(y + 1) * w]);
        lower_envelope(&line, &mut out, &mut scratch);
        d[y * w..(y + 1) * w].copy_from_slice(&out);
    }
    if d.iter().all(|&v| v >= FAR) {
        d.fill(f32::INFINITY);
    }
    d
}

/// One-dimensional squared distance transform of `f` (sampled costs) into `out`; `scratch`
/// holds the envelope's parabolas and their boundaries between calls.
fn lower_envelope(f: &[f32], out: &mut Vec<f32>, scratch: &mut (Vec<usize>, Vec<f32>)) {
    let n = f.len();
    out.clear();
    out.resize(n, 0.0);
    if n == 0 {
        return;
    }
    let (v, z) = scratch;
    v.clear();
    v.resize(n, 0);
    z.clear();
    z.resize(n + 1, 0.0);
    let mut k = 0;
    z[0] = f32::NEG_INFINITY;
    z[1] = f32::INFINITY;
    let meet = |q: usize, p: usize| {
        ((f[q] + (q * q) as f32) - (f[p] + (p * p) as f32)) / (2.0 * (q - p) as f32)
    };
    for q in 1..n {
        let mut s = meet(q, v[k]);
        // z[0] is minus infinity, so this stops at k = 0 at the latest.
        while s <= z[k] {
            k -= 1;
            s = meet(q, v[k]);
        }
        k += 1;
        v[k] = q;
        z[k] = s;
        z[k + 1] = f32::INFINITY;
    }
    let mut k = 0;
    for (q, o) in out.iter_mut().enumerate() {
        while z[k + 1] < q as f32 {
            k += 1;
        }
        let p = v[k];
        let dq = q as f32 - p as f32;
        *o = dq * dq + f[p];
    }
}

/// Thins `mask` (`w` x `h`) to an 8-connected skeleton one pixel wide that keeps its topology
/// (Zhang and Suen, 1984). Cells outside the grid count as paper.
pub fn thin(mask: &[bool], w: usize, h: usize) -> Vec<bool> {
    // The rule depends only on the 8 neighbours: decide all 256 patterns once per pass.
    let removable: [[bool; 256]; 2] = std::array::from_fn(|pass| {
        std::array::from_fn(|pattern| zhang_suen_removes(pattern as u8, pass))
    });
    let mut m = mask.to_vec();
    let at = |m: &[bool], x: isize, y: isize| -> bool {
        x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h && m[y as usize * w + x as usize]
    };
    let mut remove = Vec::new();
    loop {
        let mut changed = false;
        for rule in &removable {
            remove.clear();
            for y in 0..h as isize {
                for x in 0..w as isize {
                    if !m[y as usize * w + x as usize] {
                        continue;
                    }
                    // P2..P9 clockwise from north, P2 in bit 0.
                    let pattern = [
                        (0, -1),
                        (1, -1),
                        (1, 0),
                        (1, 1),
                        (0, 1),
                        (-1, 1),
                        (-1, 0),
                        (-1, -1),
                    ]
                    .iter()
                    .enumerate()
                    .fold(0u8, |bits, (i, &(dx, dy))| {
                        bits | (u8::from(at(&m, x + dx, y + dy)) << i)
                    });
                    if rule[pattern as usize] {
                        remove.push(y as usize * w + x as usize);
                    }
                }
            }
            changed |= !remove.is_empty();
            for &i in &remove {
                m[i] = false;
            }
        }
        if !changed {
            return m;
        }
    }
}

/// Whether Zhang and Suen's sub-iteration `pass` (0 or 1) removes a stroke cell whose
/// neighbours P2..P9 (clockwise from north) are the bits of `pattern`, P2 the lowest.
fn zhang_suen_removes(pattern: u8, pass: usize) -> bool {
    let p: [bool; 8] = std::array::from_fn(|i| pattern >> i & 1 == 1);
    let neighbours = pattern.count_ones();
    if !(2..=6).contains(&neighbours) {
        return false;
    }
    let transitions = (0..8).filter(|&i| !p[i] && p[(i + 1) % 8]).count();
    if transitions != 1 {
        return false;
    }
    let (n, e, s, wst) = (p[0], p[2], p[4], p[6]);
    let keep = if pass == 0 {
        e && s && (n || wst)
    } else {
        n && wst && (e || s)
    };
    !keep
}

/// Mean width of the strokes of `mask` in cells: their area over their skeleton's length.
/// `None` for an empty mask.
pub fn width(mask: &[bool], w: usize, h: usize) -> Option<f32> {
    let area = mask.iter().filter(|&&b| b).count();
    let length = thin(mask, w, h).iter().filter(|&&b| b).count();
    (length > 0).then(|| area as f32 / length as f32)
}

/// The 8-connected regions of `mask` (`w` x `h`): each cell's region (`0` off the mask,
/// `k + 1` in region `k`) and each region's area in cells.
pub fn regions(mask: &[bool], w: usize, h: usize) -> (Vec<u32>, Vec<usize>) {
    let mut label = vec![0u32; mask.len()];
    let mut areas = Vec::new();
    let mut stack = Vec::new();
    for start in 0..w * h {
        if !mask[start] || label[start] != 0 {
            continue;
        }
        areas.push(0);
        let k = areas.len() as u32;
        label[start] = k;
        stack.push(start);
        while let Some(i) = stack.pop() {
            areas[k as usize - 1] += 1;
            let (x, y) = (i % w, i / w);
            for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    let j = ny * w + nx;
                    if mask[j] && label[j] == 0 {
                        label[j] = k;
                        stack.push(j);
                    }
                }
            }
        }
    }
    (label, areas)
}

/// Distance from `p` to the segment from `a` to `b`.
pub fn segment_distance(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    ((p.0 - a.0 - t * dx).powi(2) + (p.1 - a.1 - t * dy).powi(2)).sqrt()
}

/// Coverage (0-1, anti-aliased) of a round pen `pen` cells wide drawn along `skeleton`.
pub fn redraw(skeleton: &[bool], w: usize, h: usize, pen: f32) -> Vec<f32> {
    squared_distance(skeleton, w, h)
        .into_iter()
        .map(|d2| (pen / 2.0 + 0.5 - d2.sqrt()).clamp(0.0, 1.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(rows: &[&str]) -> (Vec<bool>, usize, usize) {
        let (w, h) = (rows[0].len(), rows.len());
        let cells = rows
            .iter()
            .flat_map(|r| r.chars().map(|c| c == '#'))
            .collect();
        (cells, w, h)
    }

    #[test]
    fn distances_match_brute_force() {
        let (seeds, w, h) = grid(&[
            "#.........",
            "..........",
            ".....#....",
            "..........",
            ".........#",
            "..........",
        ]);
        let d = squared_distance(&seeds, w, h);
        for y in 0..h {
            for x in 0..w {
                let brute = (0..w * h)
                    .filter(|&i| seeds[i])
                    .map(|i| {
                        let (sx, sy) = ((i % w) as f32, (i / w) as f32);
                        (sx - x as f32).powi(2) + (sy - y as f32).powi(2)
                    })
                    .fold(f32::INFINITY, f32::min);
                assert_eq!(d[y * w + x], brute, "({x}, {y})");
            }
        }
        assert!(squared_distance(&[false; 6], 3, 2)
            .iter()
            .all(|v| v.is_infinite()));
    }

    #[test]
    fn a_thick_bar_thins_to_its_centre_line_and_has_its_width() {
        // 5 rows high, 20 long.
        let rows: Vec<String> = (0..9)
            .map(|y| {
                (0..24)
                    .map(|x| {
                        if (2..7).contains(&y) && (2..22).contains(&x) {
                            '#'
                        } else {
                            '.'
                        }
                    })
                    .collect()
            })
            .collect();
        let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
        let (mask, w, h) = grid(&rows);
        let skeleton = thin(&mask, w, h);
        let on: Vec<(usize, usize)> = (0..w * h)
            .filter(|&i| skeleton[i])
            .map(|i| (i % w, i / w))
            .collect();
        assert!(on.iter().all(|&(_, y)| y == 4), "{on:?}");
        assert!(on.len() >= 14 && on.len() <= 20, "{on:?}");
        let width = width(&mask, w, h).unwrap();
        assert!((5.0..=7.2).contains(&width), "{width}");
    }

    #[test]
    fn a_ring_stays_a_ring() {
        let (mask, w, h) = grid(&[
            "..........",
            ".########.",
            ".########.",
            ".##....##.",
            ".##....##.",
            ".########.",
            ".########.",
            "..........",
        ]);
        let skeleton = thin(&mask, w, h);
        // Still closed: every skeleton cell has exactly two 8-neighbours on the skeleton.
        for i in (0..w * h).filter(|&i| skeleton[i]) {
            let (x, y) = ((i % w) as isize, (i / w) as isize);
            let n = (-1..=1)
                .flat_map(|dy| (-1..=1).map(move |dx| (dx, dy)))
                .filter(|&(dx, dy)| (dx, dy) != (0, 0))
                .filter(|&(dx, dy)| skeleton[((y + dy) as usize) * w + (x + dx) as usize])
                .count();
            assert!(n >= 2, "cell ({x}, {y}) is an end: the ring was cut");
        }
    }

    #[test]
    fn regions_are_counted_with_diagonal_neighbours() {
        let (mask, w, h) = grid(&["#..##", ".#...", "....#", "#...#"]);
        let (label, areas) = regions(&mask, w, h);
        assert_eq!(areas, [2, 2, 2, 1]);
        assert_eq!(label[..6], [1, 0, 0, 2, 2, 0]);
        assert_eq!((label[6], label[19], label[15]), (1, 3, 4));
        assert!(regions(&[false; 4], 2, 2).1.is_empty());
    }

    #[test]
    fn redraw_gives_a_pen_of_the_asked_width() {
        let (skeleton, w, h) = grid(&[".........", "..#####..", "........."]);
        let cover = redraw(&skeleton, w, h, 2.0);
        assert_eq!(cover[w + 4], 1.0);
        assert_eq!(cover[4], 0.5);
        assert_eq!(cover[w], 0.0);
    }
}
