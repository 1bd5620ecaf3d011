//! `craft-server import`: copy a world from one store to another.

use tracing::info;
use world_core::store::Batch;

use crate::config::StoreUrl;
use crate::stores;

/// Rows per batch written to the destination.
const IMPORT_BATCH: usize = 50_000;

/// Copies every chunk's blocks (mirrors included), lights and signs.
/// Keys are the destination's own; values are copied exactly.
pub async fn import(from: &StoreUrl, to: &StoreUrl) -> Result<(), String> {
    let source = stores::open(from).await.map_err(|e| e.to_string())?;
    let dest = stores::open(to).await.map_err(|e| e.to_string())?;
    let chunks = source
        .list_chunks()
        .await
        .map_err(|e| format!("listing {from}: {e}"))?;
    info!(chunks = chunks.len(), %from, %to, "importing");
    let (mut blocks, mut lights, mut signs) = (0usize, 0usize, 0usize);
    let mut batch = Batch::new();
    for head in &chunks {
        let data = source
            .load_chunk(head.chunk, 0)
            .await
            .map_err(|e| format!("reading {}: {e}", head.chunk))?;
        let meta = Default::default;
        for b in &data.blocks {
            batch.set_block(head.chunk, b.pos, b.w, meta());
        }
        for l in &data.lights {
            batch.set_light(head.chunk, l.pos, l.w, meta());
        }
        for s in &data.signs {
            batch.set_sign(head.chunk, s.pos, s.face, &s.text, meta());
        }
        blocks += data.blocks.len();
        lights += data.lights.len();
        signs += data.signs.len();
        if batch.len() >= IMPORT_BATCH {
            dest.apply(&std::mem::take(&mut batch))
                .await
                .map_err(|e| format!("writing {to}: {e}"))?;
        }
    }
    if !batch.is_empty() {
        dest.apply(&batch)
            .await
            .map_err(|e| format!("writing {to}: {e}"))?;
    }
    dest.close().await.map_err(|e| e.to_string())?;
    source.close().await.map_err(|e| e.to_string())?;
    info!(
        chunks = chunks.len(),
        blocks, lights, signs, "import complete"
    );
    println!(
        "imported {} chunks: {blocks} blocks, {lights} lights, {signs} signs",
        chunks.len()
    );
    Ok(())
}
