//! The editing rules of the protocol, as pure functions.
//!
//! Each check returns a typed verdict; a refusal carries the exact text the
//! original server sends, so the server never spells a message itself.

use crate::coords::BlockPos;
use crate::item;

/// Longest sign text accepted, in characters.
pub const MAX_SIGN_TEXT_CHARS: usize = 48;

/// Highest sign face index.
pub const MAX_SIGN_FACE: i32 = 7;

/// Highest light level.
pub const MAX_LIGHT: i32 = 15;

/// Who is editing, as far as the rules care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Editor {
    /// The server only lets logged-in players build.
    pub login_required: bool,
    /// The player has logged in.
    pub logged_in: bool,
}

impl Editor {
    /// Anyone may build (the default server setting).
    pub const GUEST_BUILDS: Editor = Editor {
        login_required: false,
        logged_in: false,
    };

    fn may_build(self) -> bool {
        !self.login_required || self.logged_in
    }
}

/// Why a block edit (`B`) was refused. Checked in declaration order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockRefusal {
    /// The server requires login to build.
    LoginRequired,
    /// `y` outside `1..=255`.
    InvalidCoordinates,
    /// The item may not be placed.
    ItemNotAllowed,
    /// Placing into a non-empty space.
    NotEmpty,
    /// Removing where nothing is.
    AlreadyEmpty,
    /// Removing an indestructible block.
    Indestructible,
}

impl BlockRefusal {
    /// The `T` line sent to the player.
    pub fn message(self) -> &'static str {
        match self {
            Self::LoginRequired => LOGIN_REQUIRED,
            Self::InvalidCoordinates => "Invalid block coordinates.",
            Self::ItemNotAllowed => "That item is not allowed.",
            Self::NotEmpty => "Cannot create blocks in a non-empty space.",
            Self::AlreadyEmpty => "That space is already empty.",
            Self::Indestructible => "Cannot destroy that type of block.",
        }
    }
}

const LOGIN_REQUIRED: &str = "Only logged in users are allowed to build.";

/// Checks `B,x,y,z,w` against `previous`, the stored value at the position
/// or the generated terrain when nothing is stored.
pub fn check_block(
    editor: Editor,
    pos: BlockPos,
    w: i32,
    previous: i32,
) -> Result<(), BlockRefusal> {
    if !editor.may_build() {
        Err(BlockRefusal::LoginRequired)
    } else if !pos.y_is_editable() {
        Err(BlockRefusal::InvalidCoordinates)
    } else if !item::is_allowed(w) {
        Err(BlockRefusal::ItemNotAllowed)
    } else if w != item::AIR && previous != item::AIR {
        Err(BlockRefusal::NotEmpty)
    } else if w == item::AIR && previous == item::AIR {
        Err(BlockRefusal::AlreadyEmpty)
    } else if item::is_indestructible(previous) {
        Err(BlockRefusal::Indestructible)
    } else {
        Ok(())
    }
}

/// Why a light (`L`) was refused. The player gets `R` and the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LightRefusal {
    /// The server requires login to build.
    LoginRequired,
    /// The target block is air.
    NoBlock,
    /// Light level outside `0..=15`.
    InvalidValue,
}

impl LightRefusal {
    /// The `T` line sent to the player.
    pub fn message(self) -> &'static str {
        match self {
            Self::LoginRequired => LOGIN_REQUIRED,
            Self::NoBlock => "Lights must be placed on a block.",
            Self::InvalidValue => "Invalid light value.",
        }
    }
}

/// Checks `L,x,y,z,w` against `block`, the current block at the position.
pub fn check_light(editor: Editor, block: i32, w: i32) -> Result<(), LightRefusal> {
    if !editor.may_build() {
        Err(LightRefusal::LoginRequired)
    } else if block == item::AIR {
        Err(LightRefusal::NoBlock)
    } else if !(0..=MAX_LIGHT).contains(&w) {
        Err(LightRefusal::InvalidValue)
    } else {
        Ok(())
    }
}

/// What to do with a sign (`S`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignVerdict {
    /// Store it (or delete the face when the text is empty) and tell the others.
    Accept,
    /// Drop it without a word (bad `y`, face or length), as the original does.
    Ignore,
    /// Refuse with the login message only.
    LoginRequired,
}

impl SignVerdict {
    /// The `T` line for [`SignVerdict::LoginRequired`].
    pub const LOGIN_MESSAGE: &'static str = LOGIN_REQUIRED;
}

/// Checks `S,x,y,z,face,text`.
pub fn check_sign(editor: Editor, pos: BlockPos, face: i32, text: &str) -> SignVerdict {
    if !editor.may_build() {
        SignVerdict::LoginRequired
    } else if !pos.y_is_editable()
        || !(0..=MAX_SIGN_FACE).contains(&face)
        || text.chars().count() > MAX_SIGN_TEXT_CHARS
    {
        SignVerdict::Ignore
    } else {
        SignVerdict::Accept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: BlockPos = BlockPos::new(5, 20, 5);

    #[test]
    fn block_rules_apply_in_order() {
        let guest = Editor::GUEST_BUILDS;
        let locked = Editor {
            login_required: true,
            logged_in: false,
        };
        assert_eq!(
            check_block(locked, BlockPos::new(0, 0, 0), 99, 16),
            Err(BlockRefusal::LoginRequired)
        );
        assert_eq!(
            check_block(guest, BlockPos::new(6, 0, 6), 0, 2),
            Err(BlockRefusal::InvalidCoordinates)
        );
        assert_eq!(
            check_block(guest, BlockPos::new(6, 256, 6), 1, 0),
            Err(BlockRefusal::InvalidCoordinates)
        );
        assert_eq!(
            check_block(guest, AT, 16, 0),
            Err(BlockRefusal::ItemNotAllowed)
        );
        assert_eq!(
            check_block(guest, AT, -3, 0),
            Err(BlockRefusal::ItemNotAllowed)
        );
        assert_eq!(check_block(guest, AT, 3, 1), Err(BlockRefusal::NotEmpty));
        assert_eq!(
            check_block(guest, AT, 0, 0),
            Err(BlockRefusal::AlreadyEmpty)
        );
        assert_eq!(
            check_block(guest, AT, 0, 16),
            Err(BlockRefusal::Indestructible)
        );
        assert_eq!(check_block(guest, AT, 3, 0), Ok(()));
        assert_eq!(check_block(guest, AT, 0, 5), Ok(()));
        assert_eq!(check_block(guest, BlockPos::new(6, 255, 6), 1, 0), Ok(()));
        let member = Editor {
            login_required: true,
            logged_in: true,
        };
        assert_eq!(check_block(member, AT, 3, 0), Ok(()));
        assert_eq!(
            BlockRefusal::NotEmpty.message(),
            "Cannot create blocks in a non-empty space."
        );
    }

    #[test]
    fn light_rules() {
        let guest = Editor::GUEST_BUILDS;
        assert_eq!(check_light(guest, 0, 15), Err(LightRefusal::NoBlock));
        assert_eq!(check_light(guest, 3, 16), Err(LightRefusal::InvalidValue));
        assert_eq!(check_light(guest, 3, -1), Err(LightRefusal::InvalidValue));
        assert_eq!(check_light(guest, 3, 0), Ok(()));
        assert_eq!(check_light(guest, -3, 15), Ok(()));
    }

    #[test]
    fn sign_rules() {
        let guest = Editor::GUEST_BUILDS;
        assert_eq!(
            check_sign(guest, AT, 0, "hello, world"),
            SignVerdict::Accept
        );
        assert_eq!(check_sign(guest, AT, 8, "x"), SignVerdict::Ignore);
        assert_eq!(
            check_sign(guest, BlockPos::new(8, 0, 8), 0, "x"),
            SignVerdict::Ignore
        );
        assert_eq!(
            check_sign(guest, AT, 2, &"0".repeat(49)),
            SignVerdict::Ignore
        );
        assert_eq!(
            check_sign(guest, AT, 3, &"0".repeat(48)),
            SignVerdict::Accept
        );
        assert_eq!(
            check_sign(guest, AT, 3, &"é".repeat(48)),
            SignVerdict::Accept
        );
        assert_eq!(check_sign(guest, AT, 1, ""), SignVerdict::Accept);
        let locked = Editor {
            login_required: true,
            logged_in: false,
        };
        assert_eq!(check_sign(locked, AT, 0, "x"), SignVerdict::LoginRequired);
    }
}
