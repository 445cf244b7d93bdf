//! Seal + open throughput of typical frames.
#![allow(missing_docs)]

use conclave_frame::{Codec, FrameConfig, FrameCrypto};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};

fn pair() -> (FrameCrypto, FrameCrypto) {
    let members = [0, 1];
    let mut a = FrameCrypto::new(FrameConfig::default());
    let mut b = FrameCrypto::new(FrameConfig::default());
    a.set_epoch(1, &[7; 16], 0, &members, 0).expect("epoch");
    b.set_epoch(1, &[7; 16], 1, &members, 0).expect("epoch");
    (a, b)
}

fn frame(first: &[u8], len: usize) -> Vec<u8> {
    let mut f = first.to_vec();
    f.extend((f.len()..len).map(|i| (i as u8).wrapping_mul(37)));
    f
}

fn bench(c: &mut Criterion) {
    let cases = [
        ("opus_100B", Codec::Opus, frame(&[0x78], 100)),
        (
            "vp8_delta_1200B",
            Codec::Vp8,
            frame(&[0x31, 0x02, 0x00], 1_200),
        ),
        (
            "vp8_key_50KB",
            Codec::Vp8,
            frame(
                &[0x50, 0x2a, 0x01, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01],
                50_000,
            ),
        ),
        (
            "h264_key_50KB",
            Codec::H264,
            frame(
                &[
                    0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 0xb8,
                ],
                50_000,
            ),
        ),
    ];
    let mut group = c.benchmark_group("seal_open");
    for (name, codec, data) in &cases {
        group.throughput(Throughput::Bytes(data.len() as u64));
        let (mut a, mut b) = pair();
        group.bench_function(*name, |bench| {
            bench.iter(|| {
                let sealed = a.seal(*codec, black_box(data)).expect("seal");
                black_box(b.open(*codec, &sealed, 1).expect("open"))
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("seal");
    for (name, codec, data) in &cases {
        group.throughput(Throughput::Bytes(data.len() as u64));
        let (mut a, _) = pair();
        group.bench_function(*name, |bench| {
            bench.iter(|| black_box(a.seal(*codec, black_box(data)).expect("seal")))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("open");
    for (name, codec, data) in &cases {
        group.throughput(Throughput::Bytes(data.len() as u64));
        let (mut a, mut b) = pair();
        group.bench_function(*name, |bench| {
            bench.iter_batched(
                || a.seal(*codec, data).expect("seal"),
                |sealed| black_box(b.open(*codec, &sealed, 1).expect("open")),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
