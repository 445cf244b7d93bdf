//! Simulcast: which layer of a sender's video each receiver gets.
//!
//! A simulcast sender sends the same picture as several encodings ("layers", each an RTP
//! stream named by its `rid`). The SFU measures each layer's bitrate from what arrives (it
//! cannot look inside the encrypted frames, and `rid` names are the sender's choice, so the
//! measured rate is what orders the layers) and gives each receiver the best layer that fits
//! its share of the bandwidth the SFU estimates towards it ([`Estimate`]). A receiver
//! switches layers only at a key frame of the new layer, which the SFU requests when it
//! decides to switch; until then the old layer keeps flowing.
//!
//! # The estimate
//!
//! The estimate towards a receiver follows the loss the receiver reports in its RTCP
//! receiver reports, and is capped by the REMB it sends, if any: below 2 % loss it grows by a
//! quarter each second (up to half again what the receiver's slots would carry at best),
//! above 10 % it shrinks by half the loss, in between it holds. That is the loss-based half of
//! Google congestion control (draft-ietf-rmcat-gcc §6), faster upwards because it only has to
//! tell three layers apart. Having no probing, it learns that a layer does not fit only by
//! sending it and losing packets; so after a loss it stays under 85 % of where the loss began
//! for [`LOSS_MEMORY`], rather than climbing straight back into the same layer and freezing
//! the receiver's picture every few seconds.
//!
//! `str0m`'s send-side estimator (TWCC with delay-based control) was used before, and is not:
//! it only works with its pacer, which held every packet to every receiver to the estimate.
//! On a loaded host, late scheduling read as congestion, the estimate fell and the pacer
//! queued audio and unlayered video behind it (audio lost at 20 speakers; once, a screen
//! share that did not reach one receiver for a minute), and the pacer's timers cost the SFU
//! about 30 % of its CPU and 40 % of its memory per participant (docs/BENCHMARKS.md).
//! Without it, unlayered media goes out as it arrives, as a relay would.

use std::time::{Duration, Instant};

use str0m::media::Rid;

/// Bandwidth assumed towards a receiver before the first estimate.
pub(crate) const INITIAL_ESTIMATE_BPS: u64 = 600_000;

/// A layer must fit this many times over into a receiver's share to be chosen, so that a
/// layer is not picked at the very edge of the estimate.
const HEADROOM: f64 = 1.15;

/// How long the frame rate of a layer is counted before it is updated.
const RATE_WINDOW: Duration = Duration::from_millis(1_000);

/// Loss under which the estimate grows (a fraction of the packets sent).
const LOSS_LOW: f32 = 0.02;

/// Loss over which the estimate shrinks.
const LOSS_HIGH: f32 = 0.10;

/// How much the estimate grows per update while loss is low.
const GROWTH: f64 = 1.25;

/// How often the estimate is updated from what was reported.
const UPDATE_INTERVAL: Duration = Duration::from_secs(1);

/// How long the estimate stays under the rate at which loss last began.
const LOSS_MEMORY: Duration = Duration::from_secs(30);

/// The estimate never falls under this: the lowest layers of every sender still fit.
const FLOOR_BPS: f64 = 100_000.0;

/// What the SFU believes it can send towards one receiver, from what the receiver reports.
/// See the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct Estimate {
    bps: f64,
    /// The worst loss reported since the last update.
    worst_loss: Option<f32>,
    /// The receiver's own estimate (REMB), if it sends one.
    remb: Option<f64>,
    /// Where loss last began, and until when the estimate stays under it.
    ceiling: Option<(f64, Instant)>,
    /// When it was last updated.
    updated_at: Option<Instant>,
}

impl Default for Estimate {
    fn default() -> Self {
        Estimate {
            bps: INITIAL_ESTIMATE_BPS as f64,
            worst_loss: None,
            remb: None,
            ceiling: None,
            updated_at: None,
        }
    }
}

impl Estimate {
    /// A receiver report on one stream towards the receiver: the fraction of its packets lost
    /// (0 to 1).
    pub(crate) fn report_loss(&mut self, loss: f32) {
        if loss.is_finite() {
            let loss = loss.clamp(0.0, 1.0);
            self.worst_loss = Some(self.worst_loss.map_or(loss, |w| w.max(loss)));
        }
    }

    /// The receiver's own estimate of what it can receive (REMB).
    pub(crate) fn report_remb(&mut self, bps: f64) {
        if bps.is_finite() && bps > 0.0 {
            self.remb = Some(bps);
        }
    }

    /// Whether a second has passed since the last update.
    pub(crate) fn due(&self, now: Instant) -> bool {
        self.updated_at
            .is_none_or(|t| now.saturating_duration_since(t) >= UPDATE_INTERVAL)
    }

    /// Applies what was reported since the last update (call it when [`Estimate::due`]).
    /// `wanted_bps` is what the receiver's slots would carry at best: the estimate does not
    /// grow past half again that, so that it can follow a new track up quickly but does not
    /// drift off into bandwidth nobody tested.
    pub(crate) fn update(&mut self, wanted_bps: f64, now: Instant) {
        self.updated_at = Some(now);
        let mut cap = (wanted_bps * 1.5).max(INITIAL_ESTIMATE_BPS as f64);
        match self.ceiling {
            Some((bps, until)) if now < until => cap = cap.min(bps * 0.85),
            _ => self.ceiling = None,
        }
        match self.worst_loss.take() {
            Some(loss) if loss > LOSS_HIGH => {
                self.ceiling = Some((self.bps, now + LOSS_MEMORY));
                self.bps *= 1.0 - f64::from(loss) / 2.0;
            }
            Some(loss) if loss < LOSS_LOW => self.bps = (self.bps * GROWTH).min(cap.max(self.bps)),
            // between the two, or nothing reported (nothing sent): hold
            _ => {}
        }
        self.bps = self.bps.max(FLOOR_BPS);
    }

    /// Bits per second the SFU may send towards the receiver.
    pub(crate) fn bps(&self) -> f64 {
        self.remb.map_or(self.bps, |remb| self.bps.min(remb))
    }
}

/// One layer of an incoming simulcast track, as measured.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub(crate) rid: Rid,
    /// Smoothed bytes per frame.
    frame_bytes: f64,
    /// Frames per second over the last window (30 until the first window closes).
    fps: f64,
    window_start: Instant,
    window_frames: u32,
}

impl Layer {
    /// The layer's bitrate, bits per second.
    pub(crate) fn bitrate(&self) -> f64 {
        self.frame_bytes * 8.0 * self.fps
    }
}

/// The bitrate of an unlayered track, measured like a layer's.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meter(Option<Layer>);

impl Meter {
    /// Records a frame of `bytes`.
    pub(crate) fn observe(&mut self, bytes: usize, now: Instant) {
        let mut one: Vec<Layer> = self.0.take().into_iter().collect();
        observe(&mut one, Rid::from("-"), bytes, now);
        self.0 = one.pop();
    }

    /// Bits per second (0 before the first frame).
    pub(crate) fn bitrate(&self) -> f64 {
        self.0.as_ref().map_or(0.0, Layer::bitrate)
    }
}

/// Records a frame of `bytes` on layer `rid` of a track's `layers`.
pub(crate) fn observe(layers: &mut Vec<Layer>, rid: Rid, bytes: usize, now: Instant) {
    let bytes = bytes as f64;
    let Some(layer) = layers.iter_mut().find(|l| l.rid == rid) else {
        layers.push(Layer {
            rid,
            frame_bytes: bytes,
            fps: 30.0,
            window_start: now,
            // frames after the window's start are counted
            window_frames: 0,
        });
        return;
    };
    // key frames are several times the size of the others: a slow average rides them out
    layer.frame_bytes += 0.05 * (bytes - layer.frame_bytes);
    layer.window_frames += 1;
    let elapsed = now.saturating_duration_since(layer.window_start);
    if elapsed >= RATE_WINDOW {
        layer.fps = f64::from(layer.window_frames) / elapsed.as_secs_f64();
        layer.window_start = now;
        layer.window_frames = 0;
    }
}

/// The layer to give a receiver whose share of the estimated bandwidth is `budget_bps` and
/// who gets (or is switching to) `current`: a higher layer once it fits with headroom, the
/// current one while it still fits at all (so that an estimate hovering at a boundary does
/// not make the picture flip back and forth), else the best that fits, else the lowest.
pub(crate) fn choose(layers: &[Layer], current: Option<Rid>, budget_bps: f64) -> Option<Rid> {
    let fitting = layers
        .iter()
        .filter(|l| l.bitrate() * HEADROOM <= budget_bps)
        .max_by(|a, b| a.bitrate().total_cmp(&b.bitrate()));
    let current = layers.iter().find(|l| Some(l.rid) == current);
    if let Some(current) = current.filter(|c| c.bitrate() <= budget_bps) {
        if fitting.is_none_or(|f| f.bitrate() <= current.bitrate()) {
            return Some(current.rid);
        }
    }
    fitting
        .or_else(|| {
            layers
                .iter()
                .min_by(|a, b| a.bitrate().total_cmp(&b.bitrate()))
        })
        .map(|l| l.rid)
}

/// The bitrate of a track's best layer: what a receiver would like to get.
pub(crate) fn best_bitrate(layers: &[Layer]) -> f64 {
    layers.iter().map(Layer::bitrate).fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(now: &mut Instant) -> Vec<Layer> {
        let mut layers = Vec::new();
        // 2 s at 30 fps: h ~1.2 Mbit/s (5 kB), m ~360 kbit/s (1.5 kB), l ~120 kbit/s (500 B)
        for _ in 0..60 {
            *now += Duration::from_millis(33);
            for (rid, bytes) in [("h", 5_000), ("m", 1_500), ("l", 500)] {
                observe(&mut layers, Rid::from(rid), bytes, *now);
            }
        }
        layers
    }

    #[test]
    fn the_estimate_climbs_without_loss_and_falls_with_it() {
        let now = Instant::now();
        let mut e = Estimate::default();
        let start = e.bps();
        // nothing reported (nothing sent yet): it holds
        e.update(5e6, now);
        assert_eq!(e.bps(), start);
        for _ in 0..5 {
            e.report_loss(0.0);
            e.update(5e6, now);
        }
        assert!(e.bps() > start * 3.0, "{}", e.bps());
        // it climbs no higher than half again what is wanted
        let mut e = Estimate::default();
        for _ in 0..30 {
            e.report_loss(0.0);
            e.update(1e6, now);
        }
        assert_eq!(e.bps(), 1.5e6);
        // the worst stream counts: 30 % loss on one of them takes 15 % off
        let before = e.bps();
        e.report_loss(0.0);
        e.report_loss(0.3);
        e.update(1e6, now);
        assert!((e.bps() - before * 0.85).abs() < 1.0, "{}", e.bps());
        // moderate loss holds
        let before = e.bps();
        e.report_loss(0.05);
        e.update(1e6, now);
        assert_eq!(e.bps(), before);
        // total loss for a long while ends at the floor, not at zero
        for _ in 0..50 {
            e.report_loss(1.0);
            e.update(1e6, now);
        }
        assert_eq!(e.bps(), FLOOR_BPS);
        // nonsense is ignored
        e.report_loss(f32::NAN);
        e.report_remb(-1.0);
        e.update(1e6, now);
        assert_eq!(e.bps(), FLOOR_BPS);
    }

    #[test]
    fn after_a_loss_the_estimate_stays_under_where_it_began_for_a_while() {
        let mut now = Instant::now();
        let mut e = Estimate::default();
        for _ in 0..10 {
            e.report_loss(0.0);
            e.update(1e6, now);
        }
        let began = e.bps();
        assert_eq!(began, 1.5e6);
        // a layer that does not fit: 40 % lost
        e.report_loss(0.4);
        e.update(1e6, now);
        assert!((e.bps() - began * 0.8).abs() < 1.0, "{}", e.bps());
        // no loss since: it climbs back, but not past 85 % of where the loss began
        for _ in 0..29 {
            now += Duration::from_secs(1);
            e.report_loss(0.0);
            e.update(1e6, now);
            assert!(e.bps() <= began * 0.85, "{}", e.bps());
        }
        // after LOSS_MEMORY it may try again
        now += LOSS_MEMORY;
        e.report_loss(0.0);
        e.update(1e6, now);
        assert!(e.bps() > began * 0.85, "{}", e.bps());
    }

    #[test]
    fn a_receivers_remb_caps_the_estimate() {
        let now = Instant::now();
        let mut e = Estimate::default();
        for _ in 0..10 {
            e.report_loss(0.0);
            e.update(3e6, now);
        }
        assert!(e.bps() > 2e6);
        e.report_remb(400_000.0);
        assert_eq!(e.bps(), 400_000.0);
        e.report_remb(9e6);
        assert!(e.bps() > 2e6 && e.bps() < 9e6);
    }

    #[test]
    fn the_best_layer_that_fits_is_chosen() {
        let mut now = Instant::now();
        let layers = layers(&mut now);
        let pick = |bps: f64| choose(&layers, None, bps).map(|r| r.to_string());
        assert_eq!(pick(3_000_000.0).as_deref(), Some("h"));
        assert_eq!(
            pick(1_300_000.0).as_deref(),
            Some("m"),
            "h fits only without headroom"
        );
        assert_eq!(pick(500_000.0).as_deref(), Some("m"));
        assert_eq!(pick(200_000.0).as_deref(), Some("l"));
        assert_eq!(
            pick(10_000.0).as_deref(),
            Some("l"),
            "the lowest when nothing fits"
        );
        assert!(choose(&[], None, 1e9).is_none());
        let best = best_bitrate(&layers);
        assert!((1_100_000.0..1_300_000.0).contains(&best), "{best}");
    }

    #[test]
    fn layers_are_ordered_by_what_they_carry_not_by_name() {
        let mut now = Instant::now();
        let mut layers = Vec::new();
        for _ in 0..60 {
            now += Duration::from_millis(33);
            // a sender naming its layers the other way round
            for (rid, bytes) in [("q", 5_000), ("f", 500)] {
                observe(&mut layers, Rid::from(rid), bytes, now);
            }
        }
        assert_eq!(
            choose(&layers, None, 5e6).map(|r| r.to_string()).as_deref(),
            Some("q")
        );
        assert_eq!(
            choose(&layers, None, 2e5).map(|r| r.to_string()).as_deref(),
            Some("f")
        );
    }

    #[test]
    fn a_receiver_keeps_its_layer_while_it_fits_and_drops_when_it_does_not() {
        let mut now = Instant::now();
        let layers = layers(&mut now);
        let (h, m) = (Some(Rid::from("h")), Some(Rid::from("m")));
        let pick = |current, bps: f64| choose(&layers, current, bps).map(|r| r.to_string());
        // 1.25 Mbit/s: not enough headroom to climb to h, enough to stay on it
        assert_eq!(pick(m, 1_250_000.0).as_deref(), Some("m"));
        assert_eq!(pick(h, 1_250_000.0).as_deref(), Some("h"));
        // below h's own rate it goes down
        assert_eq!(pick(h, 900_000.0).as_deref(), Some("m"));
        assert_eq!(pick(m, 3_000_000.0).as_deref(), Some("h"));
    }
}
