//! Typed data attached to a socket (or to the server, as app state).

use std::any::{Any, TypeId};

use parking_lot::RwLock;

type Entry = (TypeId, Box<dyn Any + Send + Sync>);

/// A small type map: at most one value per type. Empty costs one pointer;
/// nothing is allocated until the first insert.
///
/// ```
/// use tidewire::Extensions;
/// #[derive(Clone, Debug, PartialEq)]
/// struct User { name: String }
/// let ext = Extensions::default();
/// ext.insert(User { name: "ada".into() });
/// assert_eq!(ext.get::<User>().unwrap().name, "ada");
/// assert!(ext.get::<u32>().is_none());
/// ```
// Boxed on purpose: empty costs one pointer, not an empty Vec's 24 bytes.
#[allow(clippy::box_collection)]
#[derive(Default)]
pub struct Extensions(RwLock<Option<Box<Vec<Entry>>>>);

impl Extensions {
    /// Stores `value`, returning the previous value of that type.
    ///
    /// ```
    /// let ext = tidewire::Extensions::default();
    /// assert_eq!(ext.insert(1u8), None);
    /// assert_eq!(ext.insert(2u8), Some(1));
    /// ```
    pub fn insert<T: Send + Sync + 'static>(&self, value: T) -> Option<T> {
        let mut guard = self.0.write();
        let entries = guard.get_or_insert_with(Default::default);
        let id = TypeId::of::<T>();
        if let Some(slot) = entries.iter_mut().find(|(t, _)| *t == id) {
            let old = std::mem::replace(&mut slot.1, Box::new(value));
            return old.downcast::<T>().ok().map(|b| *b);
        }
        entries.push((id, Box::new(value)));
        None
    }

    /// A clone of the value of type `T`.
    ///
    /// ```
    /// let ext = tidewire::Extensions::default();
    /// ext.insert(String::from("ada"));
    /// assert_eq!(ext.get::<String>().as_deref(), Some("ada"));
    /// ```
    pub fn get<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.with(|v: Option<&T>| v.cloned())
    }

    /// Runs `f` on the value of type `T` (no clone needed). `f` runs under a
    /// read lock: it must not insert into or remove from the same `Extensions`.
    ///
    /// ```
    /// let ext = tidewire::Extensions::default();
    /// ext.insert(vec![1, 2, 3]);
    /// assert_eq!(ext.with(|v: Option<&Vec<i32>>| v.map(|v| v.len())), Some(3));
    /// ```
    pub fn with<T: 'static, R>(&self, f: impl FnOnce(Option<&T>) -> R) -> R {
        let guard = self.0.read();
        let id = TypeId::of::<T>();
        let value = guard
            .as_ref()
            .and_then(|e| e.iter().find(|(t, _)| *t == id))
            .and_then(|(_, v)| v.downcast_ref::<T>());
        f(value)
    }

    /// Whether a value of type `T` is stored.
    ///
    /// ```
    /// let ext = tidewire::Extensions::default();
    /// ext.insert(1u8);
    /// assert!(ext.contains::<u8>());
    /// ```
    pub fn contains<T: 'static>(&self) -> bool {
        self.with(|v: Option<&T>| v.is_some())
    }

    /// Removes and returns the value of type `T`.
    ///
    /// ```
    /// let ext = tidewire::Extensions::default();
    /// ext.insert(1u8);
    /// assert_eq!(ext.remove::<u8>(), Some(1));
    /// assert!(!ext.contains::<u8>());
    /// ```
    pub fn remove<T: 'static>(&self) -> Option<T> {
        let mut guard = self.0.write();
        let entries = guard.as_mut()?;
        let id = TypeId::of::<T>();
        let at = entries.iter().position(|(t, _)| *t == id)?;
        let (_, value) = entries.swap_remove(at);
        value.downcast::<T>().ok().map(|b| *b)
    }

    /// Removes everything.
    ///
    /// ```
    /// let ext = tidewire::Extensions::default();
    /// ext.insert(1u8);
    /// ext.clear();
    /// assert!(!ext.contains::<u8>());
    /// ```
    pub fn clear(&self) {
        *self.0.write() = None;
    }

    /// Moves every value out into a new `Extensions` (a socket's state kept for recovery).
    pub(crate) fn take(&self) -> Extensions {
        Extensions(parking_lot::RwLock::new(self.0.write().take()))
    }

    /// Puts back values taken with [`Extensions::take`].
    pub(crate) fn restore(&self, from: Extensions) {
        *self.0.write() = from.0.into_inner();
    }
}

impl std::fmt::Debug for Extensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.read().as_ref().map_or(0, |e| e.len());
        f.debug_struct("Extensions").field("len", &n).finish()
    }
}
