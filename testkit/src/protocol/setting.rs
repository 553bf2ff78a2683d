//! Where a run happens and how it was asked to run: door, machine, CPUs,
//! LAPIC mode, strategy and seed. One struct for every place that carries
//! them: the `hello` event (flat on the wire, built and read through
//! [`Setting::hello`] and [`Event::setting`]), the QR summary's header, the
//! kernel's end-of-run screen, and the host's checks.

use core::fmt;

use super::{Door, Event, LapicMode, PROTOCOL_VERSION};
use crate::expect::{Machine, Strategy};
use crate::summary;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    pub door: Door,
    pub machine: Machine,
    /// CPUs online.
    pub cpus: u32,
    pub lapic: LapicMode,
    pub strategy: Strategy,
    pub seed: u64,
}

impl Setting {
    /// The `hello` that opens a boot in this setting, at this protocol version.
    pub fn hello<S>(self, tsc_mhz: u64, build: S) -> Event<S> {
        Event::Hello {
            version: PROTOCOL_VERSION,
            door: self.door,
            machine: self.machine,
            cpus: self.cpus,
            lapic: self.lapic,
            strategy: self.strategy,
            seed: self.seed,
            tsc_mhz,
            build,
        }
    }
}

impl<S> Event<S> {
    /// The setting a `hello` announces; `None` for every other event.
    pub fn setting(&self) -> Option<Setting> {
        match *self {
            Event::Hello {
                door,
                machine,
                cpus,
                lapic,
                strategy,
                seed,
                ..
            } => Some(Setting {
                door,
                machine,
                cpus,
                lapic,
                strategy,
                seed,
            }),
            _ => None,
        }
    }
}

/// `door=limine machine=tcg cpus=2 lapic=x2apic strategy=naive seed=1`.
impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "door={} machine={} cpus={} lapic={} strategy={} seed={}",
            summary::door_name(self.door),
            summary::machine_name(self.machine),
            self.cpus,
            summary::lapic_name(self.lapic),
            self.strategy.name(),
            self.seed
        )
    }
}

#[cfg(feature = "std")]
impl super::Transcript {
    /// The setting of the boot's first `hello`.
    pub fn setting(&self) -> Option<Setting> {
        self.events().find_map(|(_, e)| e.setting())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    const SETTING: Setting = Setting {
        door: Door::Limine,
        machine: Machine::Tcg,
        cpus: 2,
        lapic: LapicMode::X2apic,
        strategy: Strategy::Naive,
        seed: 1,
    };

    #[test]
    fn a_hello_carries_its_setting_and_nothing_else_does() {
        let hello = SETTING.hello(2500, "b");
        assert_eq!(hello.setting(), Some(SETTING));
        let Event::Hello {
            version,
            tsc_mhz,
            build,
            ..
        } = hello
        else {
            panic!("not a hello");
        };
        assert_eq!((version, tsc_mhz, build), (PROTOCOL_VERSION, 2500, "b"));
        assert_eq!(Event::<&str>::Plan { count: 1 }.setting(), None);
    }

    #[test]
    fn the_setting_reads_as_words() {
        assert_eq!(
            SETTING.to_string(),
            "door=limine machine=tcg cpus=2 lapic=x2apic strategy=naive seed=1"
        );
    }
}
