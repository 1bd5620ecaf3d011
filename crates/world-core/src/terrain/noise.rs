//! Simplex noise as Craft's `deps/noise/noise.c` computes it.
//!
//! Bit-exactness rules, all deliberate:
//!
//! - every operation is an `f32` operation, evaluated left to right in the
//!   order the C source writes it (C99 on x86-64 evaluates `float` in
//!   `float`, `FLT_EVAL_METHOD == 0`); Rust never contracts `a * b + c` into
//!   a fused multiply-add, so plain operators reproduce the C rounding;
//! - the permutation table is the default one (the client never reseeds);
//! - float-to-int conversions go through [`c_int`], which reproduces what
//!   the x86-64 client does when a value is out of `int` range.

/// The skewing factor of the 2D grid, `(sqrt(3) - 1) / 2` rounded to `f32`.
const F2: f32 = 0.366_025_42;
/// The unskewing factor of the 2D grid, `(3 - sqrt(3)) / 6` rounded to `f32`.
const G2: f32 = 0.211_324_87;
/// The skewing factor of the 3D grid (`1.0f / 3.0f`).
const F3: f32 = 1.0 / 3.0;
/// The unskewing factor of the 3D grid (`1.0f / 6.0f`).
const G3: f32 = 1.0 / 6.0;

/// Gradient directions; 2D noise uses the first two components of the
/// first twelve.
const GRAD3: [[f32; 3]; 16] = [
    [1.0, 1.0, 0.0],
    [-1.0, 1.0, 0.0],
    [1.0, -1.0, 0.0],
    [-1.0, -1.0, 0.0],
    [1.0, 0.0, 1.0],
    [-1.0, 0.0, 1.0],
    [1.0, 0.0, -1.0],
    [-1.0, 0.0, -1.0],
    [0.0, 1.0, 1.0],
    [0.0, -1.0, 1.0],
    [0.0, 1.0, -1.0],
    [0.0, -1.0, -1.0],
    [1.0, 0.0, -1.0],
    [-1.0, 0.0, -1.0],
    [0.0, -1.0, 1.0],
    [0.0, 1.0, 1.0],
];

/// Ken Perlin's reference permutation of `0..=255`, the default of the
/// noise library.
const PERM_BASE: [u8; 256] = [
    151, 160, 137, 91, 90, 15, 131, 13, 201, 95, 96, 53, 194, 233, 7, 225, 140, 36, 103, 30, 69,
    142, 8, 99, 37, 240, 21, 10, 23, 190, 6, 148, 247, 120, 234, 75, 0, 26, 197, 62, 94, 252, 219,
    203, 117, 35, 11, 32, 57, 177, 33, 88, 237, 149, 56, 87, 174, 20, 125, 136, 171, 168, 68, 175,
    74, 165, 71, 134, 139, 48, 27, 166, 77, 146, 158, 231, 83, 111, 229, 122, 60, 211, 133, 230,
    220, 105, 92, 41, 55, 46, 245, 40, 244, 102, 143, 54, 65, 25, 63, 161, 1, 216, 80, 73, 209, 76,
    132, 187, 208, 89, 18, 169, 200, 196, 135, 130, 116, 188, 159, 86, 164, 100, 109, 198, 173,
    186, 3, 64, 52, 217, 226, 250, 124, 123, 5, 202, 38, 147, 118, 126, 255, 82, 85, 212, 207, 206,
    59, 227, 47, 16, 58, 17, 182, 189, 28, 42, 223, 183, 170, 213, 119, 248, 152, 2, 44, 154, 163,
    70, 221, 153, 101, 155, 167, 43, 172, 9, 129, 22, 39, 253, 19, 98, 108, 110, 79, 113, 224, 232,
    178, 185, 112, 104, 218, 246, 97, 228, 251, 34, 242, 193, 238, 210, 144, 12, 191, 179, 162,
    241, 81, 51, 145, 235, 249, 14, 239, 107, 49, 192, 214, 31, 181, 199, 106, 157, 184, 84, 204,
    176, 115, 121, 50, 45, 127, 4, 150, 254, 138, 236, 205, 93, 222, 114, 67, 29, 24, 72, 243, 141,
    128, 195, 78, 66, 215, 61, 156, 180,
];

/// The permutation written twice, so that `PERM[a + PERM[b]]` (with `a` up
/// to 256) never needs a second wrap, as in the C table.
static PERM: [u8; 512] = {
    let mut perm = [0u8; 512];
    let mut i = 0;
    while i < 512 {
        perm[i] = PERM_BASE[i % 256];
        i += 1;
    }
    perm
};

/// `(int) f` as the x86-64 client computes it: truncation toward zero, and
/// the "integer indefinite" value `INT_MIN` for NaN and out-of-range values
/// (what `cvttss2si` returns; C leaves the case undefined). Rust's `as`
/// would saturate instead, which differs far from the origin, where
/// `simplex2(x, z, 6, ..)` multiplies block coordinates by up to 32.
#[inline]
pub(crate) fn c_int(f: f32) -> i32 {
    // 2^31 is exactly representable; the range test is false for NaN.
    if (-2_147_483_648.0..2_147_483_648.0).contains(&f) {
        f as i32
    } else {
        i32::MIN
    }
}

/// The lattice index of a floored coordinate, `(int) i & 255`.
#[inline]
fn lattice(i: f32) -> usize {
    // Masked to 0..=255, so the cast is lossless.
    (c_int(i) & 255) as usize
}

#[inline]
fn perm(index: usize) -> usize {
    usize::from(PERM[index])
}

/// One octave of 2D simplex noise, in roughly `-1..=1`.
fn noise2(x: f32, y: f32) -> f32 {
    let s = (x + y) * F2;
    let i = (x + s).floor();
    let j = (y + s).floor();
    let t = (i + j) * G2;

    let x0 = x - (i - t);
    let y0 = y - (j - t);
    // Which of the two triangles of the skewed cell holds the point.
    let (i1, j1) = if x0 > y0 { (1usize, 0usize) } else { (0, 1) };
    // `xx[0] - i1 + G2`: the integer offset is converted to float first.
    let x1 = x0 - i1 as f32 + G2;
    let y1 = y0 - j1 as f32 + G2;
    let x2 = x0 + G2 * 2.0 - 1.0;
    let y2 = y0 + G2 * 2.0 - 1.0;

    let ii = lattice(i);
    let jj = lattice(j);
    let g = [
        perm(ii + perm(jj)) % 12,
        perm(ii + i1 + perm(jj + j1)) % 12,
        perm(ii + 1 + perm(jj + 1)) % 12,
    ];

    let corners = [(x0, y0), (x1, y1), (x2, y2)];
    let mut noise = [0.0f32; 3];
    for ((n, &(cx, cy)), &gi) in noise.iter_mut().zip(&corners).zip(&g) {
        let f = 0.5 - cx * cx - cy * cy;
        if f > 0.0 {
            let grad = GRAD3[gi];
            *n = f * f * f * f * (grad[0] * cx + grad[1] * cy);
        }
    }
    (noise[0] + noise[1] + noise[2]) * 70.0
}

/// One octave of 3D simplex noise, in roughly `-1..=1`.
fn noise3(x: f32, y: f32, z: f32) -> f32 {
    let s = (x + y + z) * F3;
    let i = (x + s).floor();
    let j = (y + s).floor();
    let k = (z + s).floor();
    let t = (i + j + k) * G3;

    let p0 = [x - (i - t), y - (j - t), z - (k - t)];

    // The two intermediate corners of the simplex holding the point, chosen
    // with exactly the C comparisons (ties matter for bit-exactness).
    let (o1, o2): ([usize; 3], [usize; 3]) = if p0[0] >= p0[1] {
        if p0[1] >= p0[2] {
            ([1, 0, 0], [1, 1, 0])
        } else if p0[0] >= p0[2] {
            ([1, 0, 0], [1, 0, 1])
        } else {
            ([0, 0, 1], [1, 0, 1])
        }
    } else if p0[1] < p0[2] {
        ([0, 0, 1], [0, 1, 1])
    } else if p0[0] < p0[2] {
        ([0, 1, 0], [0, 1, 1])
    } else {
        ([0, 1, 0], [1, 1, 0])
    };

    let mut p1 = [0.0f32; 3];
    let mut p2 = [0.0f32; 3];
    let mut p3 = [0.0f32; 3];
    for c in 0..3 {
        p3[c] = p0[c] - 1.0 + 3.0 * G3;
        p2[c] = p0[c] - o2[c] as f32 + 2.0 * G3;
        p1[c] = p0[c] - o1[c] as f32 + G3;
    }

    let ii = lattice(i);
    let jj = lattice(j);
    let kk = lattice(k);
    let g = [
        perm(ii + perm(jj + perm(kk))) % 12,
        perm(ii + o1[0] + perm(jj + o1[1] + perm(o1[2] + kk))) % 12,
        perm(ii + o2[0] + perm(jj + o2[1] + perm(o2[2] + kk))) % 12,
        perm(ii + 1 + perm(jj + 1 + perm(kk + 1))) % 12,
    ];

    let corners = [p0, p1, p2, p3];
    let mut noise = [0.0f32; 4];
    for ((n, p), &gi) in noise.iter_mut().zip(&corners).zip(&g) {
        let f = 0.6 - p[0] * p[0] - p[1] * p[1] - p[2] * p[2];
        if f > 0.0 {
            let grad = GRAD3[gi];
            *n = f * f * f * f * (p[0] * grad[0] + p[1] * grad[1] + p[2] * grad[2]);
        }
    }
    (noise[0] + noise[1] + noise[2] + noise[3]) * 32.0
}

/// Fractal 2D simplex noise, as Craft's `simplex2`: `octaves` octaves, each
/// `lacunarity` times the frequency and `persistence` times the amplitude
/// of the previous one, normalised to roughly `0..=1`.
///
/// Bit-exact with the C function (same `f32` operations in the same order).
/// `octaves < 1` behaves as 1, as in C.
pub fn simplex2(x: f32, y: f32, octaves: i32, persistence: f32, lacunarity: f32) -> f32 {
    let mut freq = 1.0f32;
    let mut amp = 1.0f32;
    let mut max = 1.0f32;
    let mut total = noise2(x, y);
    for _ in 1..octaves {
        freq *= lacunarity;
        amp *= persistence;
        max += amp;
        total += noise2(x * freq, y * freq) * amp;
    }
    (1.0 + total / max) / 2.0
}

/// Fractal 3D simplex noise, as Craft's `simplex3` (see [`simplex2`]).
pub fn simplex3(x: f32, y: f32, z: f32, octaves: i32, persistence: f32, lacunarity: f32) -> f32 {
    let mut freq = 1.0f32;
    let mut amp = 1.0f32;
    let mut max = 1.0f32;
    let mut total = noise3(x, y, z);
    for _ in 1..octaves {
        freq *= lacunarity;
        amp *= persistence;
        max += amp;
        total += noise3(x * freq, y * freq, z * freq) * amp;
    }
    (1.0 + total / max) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_the_c_literals() {
        // `0.3660254037844386f` and `0.21132486540518713f` rounded to f32.
        assert_eq!(F2, 0.366_025_403_784_438_6_f64 as f32);
        assert_eq!(G2, 0.211_324_865_405_187_13_f64 as f32);
    }

    #[test]
    fn c_int_truncates_and_flags_out_of_range() {
        assert_eq!(c_int(-1.5), -1);
        assert_eq!(c_int(2.9), 2);
        assert_eq!(c_int(-2_147_483_648.0), i32::MIN);
        assert_eq!(c_int(2_147_483_648.0), i32::MIN);
        assert_eq!(c_int(f32::NAN), i32::MIN);
        assert_eq!(c_int(-3.0e9), i32::MIN);
    }

    #[test]
    fn perm_is_doubled() {
        assert_eq!(PERM[..256], PERM[256..]);
        assert_eq!(PERM[0], 151);
        assert_eq!(PERM[511], 180);
    }
}
