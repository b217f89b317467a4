//! Maximal Rectangles packing of (SM partition × time quota) rectangles into one GPU's unit
//! square (Jylänki, "A Thousand Ways to Pack the Bin", 2010): the free space is kept as the list
//! of maximal free rectangles; a new rectangle goes where it leaves the shortest leftover side
//! (best short side fit). FaST-GShare's node selection packs each GPU this way.

const EPS: f64 = 1e-9;

/// An axis-aligned rectangle in the GPU's unit square: x = SM share, y = time quota.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Rect {
    fn contains(&self, o: &Rect) -> bool {
        o.x >= self.x - EPS
            && o.y >= self.y - EPS
            && o.x + o.w <= self.x + self.w + EPS
            && o.y + o.h <= self.y + self.h + EPS
    }
    fn intersects(&self, o: &Rect) -> bool {
        o.x < self.x + self.w - EPS
            && o.x + o.w > self.x + EPS
            && o.y < self.y + self.h - EPS
            && o.y + o.h > self.y + EPS
    }
}

/// The free space of one GPU.
#[derive(Clone, Debug)]
pub struct MaxRects {
    free: Vec<Rect>,
}

impl MaxRects {
    /// The free space left by `used` rectangles in the unit square.
    pub fn from_used(used: &[Rect]) -> Self {
        let mut m = MaxRects {
            free: vec![Rect {
                x: 0.0,
                y: 0.0,
                w: 1.0,
                h: 1.0,
            }],
        };
        for r in used {
            m.occupy(r);
        }
        m
    }

    /// The best position for a `w × h` rectangle: (score, rect), lower scores better.
    pub fn find(&self, w: f64, h: f64) -> Option<((f64, f64), Rect)> {
        self.free
            .iter()
            .filter(|f| w <= f.w + EPS && h <= f.h + EPS)
            .map(|f| {
                let (dw, dh) = (f.w - w, f.h - h);
                ((dw.min(dh), dw.max(dh)), Rect { x: f.x, y: f.y, w, h })
            })
            .min_by(|a, b| a.0.partial_cmp(&b.0).expect("finite scores"))
    }

    /// Marks `r` used: splits every free rectangle it overlaps, then drops the contained ones.
    pub fn occupy(&mut self, r: &Rect) {
        let mut next = Vec::with_capacity(self.free.len() + 4);
        for f in &self.free {
            if !f.intersects(r) {
                next.push(*f);
                continue;
            }
            if r.x > f.x + EPS {
                next.push(Rect {
                    x: f.x,
                    y: f.y,
                    w: r.x - f.x,
                    h: f.h,
                });
            }
            if r.x + r.w < f.x + f.w - EPS {
                next.push(Rect {
                    x: r.x + r.w,
                    y: f.y,
                    w: f.x + f.w - (r.x + r.w),
                    h: f.h,
                });
            }
            if r.y > f.y + EPS {
                next.push(Rect {
                    x: f.x,
                    y: f.y,
                    w: f.w,
                    h: r.y - f.y,
                });
            }
            if r.y + r.h < f.y + f.h - EPS {
                next.push(Rect {
                    x: f.x,
                    y: r.y + r.h,
                    w: f.w,
                    h: f.y + f.h - (r.y + r.h),
                });
            }
        }
        let mut kept: Vec<Rect> = Vec::with_capacity(next.len());
        for (i, a) in next.iter().enumerate() {
            let dominated = next
                .iter()
                .enumerate()
                .any(|(j, b)| i != j && b.contains(a) && (!a.contains(b) || j < i));
            if !dominated {
                kept.push(*a);
            }
        }
        self.free = kept;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_the_papers_consolidation_into_one_gpu() {
        // 4 × (12 % SM, 40 % quota), 2 × (24 %, 40 %), 2 × (50 %, 60 %): Σ area 0.984 ≤ 1.
        let mut m = MaxRects::from_used(&[]);
        let mut placed = Vec::new();
        for &(w, h) in &[
            (0.5, 0.6),
            (0.5, 0.6),
            (0.24, 0.4),
            (0.24, 0.4),
            (0.12, 0.4),
            (0.12, 0.4),
            (0.12, 0.4),
            (0.12, 0.4),
        ] {
            let (_, r) = m
                .find(w, h)
                .unwrap_or_else(|| panic!("({w}, {h}) does not fit; placed {placed:?}"));
            m.occupy(&r);
            placed.push(r);
        }
        for (i, a) in placed.iter().enumerate() {
            for b in &placed[i + 1..] {
                assert!(!a.intersects(b), "{a:?} overlaps {b:?}");
            }
        }
        // Nothing of 12 % × 40 % fits any more.
        assert!(m.find(0.12, 0.4).is_none());
        // Freeing is rebuilding from what stays.
        let m = MaxRects::from_used(&placed[1..]);
        assert!(m.find(0.5, 0.6).is_some());
    }
}
