//! `V,VERSION`: only the first counts; another version closes the
//! connection.

use tracing::info;
use world_core::protocol::PROTOCOL_VERSION;

use crate::world::{ConnId, Step, World};

impl World {
    pub(crate) fn on_version(&mut self, conn: ConnId, version: i32) -> Step {
        let Some(player) = self.players.get_mut(&conn) else {
            return Step::Done;
        };
        if player.version.is_some() {
            return Step::Done;
        }
        if version != PROTOCOL_VERSION {
            info!(
                player = player.id,
                version, "unsupported protocol version; closing"
            );
            player.out.close();
            return Step::Done;
        }
        player.version = Some(version);
        Step::Done
    }
}
