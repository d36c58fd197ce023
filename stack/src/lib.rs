//! The stack as the lab sees it, whatever runs it: the one table of lab settings, the
//! machine (`platform`), the runtimes (native processes, Docker Compose, Docker Swarm) behind
//! one trait, the lab's client of the load balancer, the lab's own container, and what each
//! runtime needs on the machine. It knows nothing of load runs, protocols or the live page:
//! the `lab` crate drives the stack through [`runtime::Runtime`].

pub mod container;
pub mod deps;
pub mod lb;
pub mod platform;
pub mod prereq;
pub mod runtime;
pub mod settings;
