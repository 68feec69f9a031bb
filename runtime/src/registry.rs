//! The node's name registry: find a live actor by name, as a typed
//! [`ActorRef<A>`] or as a [`Recipient<M>`] for a message type it exposes.
//!
//! Names are registered at spawn ([`SpawnOptions::name`](crate::SpawnOptions::name)),
//! are unique among live actors, and are released when the actor stops.

use std::any::{Any, TypeId, type_name};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;

use crate::actor::{Actor, ActorId, Message};
use crate::actor_ref::ActorRef;
use crate::cell::{CellRef, Shared};
use crate::error::{ExposeError, LookupError, SpawnError};
use crate::recipient::Recipient;

struct Exposed {
    message: TypeId,
    recipient: Box<dyn Any + Send + Sync>,
}

struct Entry {
    cell: CellRef,
    exposed: Vec<Exposed>,
}

/// Names of live actors. Reach it through [`Node::registry`](crate::Node::registry).
pub struct Registry {
    names: DashMap<Arc<str>, Entry>,
    /// Bumped after every change: see [`generation`](Self::generation).
    generation: AtomicU64,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("names", &self.names())
            .finish()
    }
}

impl Registry {
    pub(crate) fn new() -> Self {
        Self {
            names: DashMap::new(),
            generation: AtomicU64::new(0),
        }
    }

    /// A number that changes after every registration, release and
    /// `expose`: a cache of lookups (such as the recipients a remote
    /// endpoint resolved for its peers) stays valid while it is unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// # use plexus_runtime::prelude::*;
    /// # struct Idle;
    /// # impl Actor for Idle {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), SpawnError> {
    /// let node = Node::builder().build();
    /// let before = node.registry().generation();
    /// node.spawn_with(SpawnOptions::new().name("idle"), Idle)?;
    /// assert_ne!(node.registry().generation(), before);
    /// # Ok(()) }
    /// ```
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn insert(&self, name: Arc<str>, cell: CellRef) -> Result<(), SpawnError> {
        let inserted = self.insert_entry(name, cell);
        self.changed();
        inserted
    }

    fn insert_entry(&self, name: Arc<str>, cell: CellRef) -> Result<(), SpawnError> {
        match self.names.entry(name) {
            MapEntry::Occupied(mut e) => {
                // The previous holder may have died without being removed
                // yet (its cleanup runs right after its death notice).
                if e.get().cell.core().is_terminated() {
                    e.insert(Entry {
                        cell,
                        exposed: Vec::new(),
                    });
                    Ok(())
                } else {
                    Err(SpawnError::NameTaken(Arc::clone(e.key())))
                }
            }
            MapEntry::Vacant(e) => {
                e.insert(Entry {
                    cell,
                    exposed: Vec::new(),
                });
                Ok(())
            }
        }
    }

    /// Remove `name` if it still belongs to actor `id`.
    pub(crate) fn remove(&self, name: &str, id: ActorId) {
        if self
            .names
            .remove_if(name, |_, e| e.cell.core().id == id)
            .is_some()
        {
            self.changed();
        }
    }

    pub(crate) fn expose<M: Message>(
        &self,
        name: &str,
        id: ActorId,
        recipient: Recipient<M>,
    ) -> Result<(), ExposeError> {
        let mut entry = match self.names.get_mut(name) {
            Some(e) if e.cell.core().id == id && !e.cell.core().is_terminated() => e,
            _ => return Err(ExposeError::Stopped(id)),
        };
        let message = TypeId::of::<M>();
        entry.exposed.retain(|x| x.message != message);
        entry.exposed.push(Exposed {
            message,
            recipient: Box::new(recipient),
        });
        drop(entry);
        self.changed();
        Ok(())
    }

    /// The actor registered as `name`, typed.
    ///
    /// # Errors
    ///
    /// [`LookupError::NotFound`] or [`LookupError::WrongType`].
    pub fn lookup<A: Actor>(&self, name: &str) -> Result<ActorRef<A>, LookupError> {
        let entry = self.live(name)?;
        let cell = Arc::clone(&entry.cell);
        let actual = cell.type_name();
        drop(entry);
        match cell.as_any_arc().downcast::<Shared<A>>() {
            Ok(shared) => Ok(ActorRef { shared }),
            Err(_) => Err(LookupError::WrongType {
                name: name.into(),
                expected: type_name::<A>(),
                actual,
            }),
        }
    }

    /// The actor registered as `name`, as a recipient of `M`; it must have
    /// been exposed with [`ActorRef::expose`].
    ///
    /// # Errors
    ///
    /// [`LookupError::NotFound`] or [`LookupError::NotExposed`].
    pub fn lookup_recipient<M: Message>(&self, name: &str) -> Result<Recipient<M>, LookupError> {
        let entry = self.live(name)?;
        entry
            .exposed
            .iter()
            .find(|x| x.message == TypeId::of::<M>())
            .and_then(|x| x.recipient.downcast_ref::<Recipient<M>>())
            .cloned()
            .ok_or_else(|| LookupError::NotExposed {
                name: name.into(),
                message: type_name::<M>(),
            })
    }

    fn live(
        &self,
        name: &str,
    ) -> Result<dashmap::mapref::one::Ref<'_, Arc<str>, Entry>, LookupError> {
        match self.names.get(name) {
            Some(e) if !e.cell.core().is_terminated() => Ok(e),
            _ => Err(LookupError::NotFound(name.into())),
        }
    }

    /// Whether a live actor holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.live(name).is_ok()
    }

    /// Every registered name, sorted.
    pub fn names(&self) -> Vec<Arc<str>> {
        let mut v: Vec<Arc<str>> = self.names.iter().map(|e| Arc::clone(e.key())).collect();
        v.sort();
        v
    }
}
