//! A randomized run: faults and client traffic for a while, then everything heals and the
//! cluster must make progress again within a bound.

use super::{Cluster, Micros, SimOptions};
use crate::raft::{ConfChange, Error, NodeId};

/// How a chaos run is shaped.
#[derive(Clone, Debug)]
pub struct ChaosOptions {
    /// The cluster settings (nodes, seed, timings).
    pub sim: SimOptions,
    /// How long faults are injected.
    pub chaos: Micros,
    /// The bound on recovering after everything heals.
    pub liveness: Micros,
    /// Mean time between fault actions.
    pub fault_every: Micros,
    /// Mean time between client proposals.
    pub propose_every: Micros,
    /// Mean time between client reads.
    pub read_every: Micros,
    /// Percent of messages followed by a hostile variant while faults are injected.
    pub hostile_percent: u64,
}

impl ChaosOptions {
    /// Defaults: 3 s of chaos, 5 s to recover.
    pub fn new(nodes: usize, seed: u64) -> Self {
        Self {
            sim: SimOptions::new(nodes, seed),
            chaos: 3_000_000,
            liveness: 5_000_000,
            fault_every: 150_000,
            propose_every: 8_000,
            read_every: 25_000,
            hostile_percent: 0,
        }
    }
}

/// What a successful run did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Proposals acknowledged.
    pub acknowledged: usize,
    /// Reads served.
    pub reads: u64,
    /// Fault actions taken.
    pub faults: usize,
    /// Snapshots installed by followers.
    pub snapshots: u64,
    /// Membership changes proposed.
    pub membership_changes: usize,
    /// Virtual time from healing to renewed progress.
    pub recovery: Micros,
    /// Hostile messages delivered, and how many of them were refused with an error.
    pub hostile: (u64, u64),
}

/// Runs one randomized simulation. An error names the violated property.
pub fn run(opts: ChaosOptions) -> Result<Report, String> {
    let mut cluster = Cluster::new(opts.sim.clone());
    cluster.hostile_percent = opts.hostile_percent;
    let mut report = Report::default();
    let mut retired = Vec::new();
    let (mut next_fault, mut next_propose, mut next_read) = (opts.fault_every, 0, opts.read_every);
    while cluster.now < opts.chaos {
        let next = next_fault.min(next_propose).min(next_read).min(opts.chaos);
        cluster.run_until_time(next)?;
        // Nodes come and go with membership changes; removed ones stay down.
        let ids: Vec<NodeId> =
            cluster.nodes.keys().copied().filter(|id| !retired.contains(id)).collect();
        if cluster.now >= next_fault {
            report.membership_changes += fault(&mut cluster, &ids, &mut retired)?;
            report.faults += 1;
            next_fault =
                cluster.now + cluster.rng.between(opts.fault_every / 2, opts.fault_every * 3 / 2);
        }
        if cluster.now >= next_propose {
            propose(&mut cluster, &ids);
            next_propose = cluster.now + cluster.rng.between(1, opts.propose_every * 2);
        }
        if cluster.now >= next_read {
            let id = ids[cluster.rng.next_u64() as usize % ids.len()];
            let _ = cluster.read(id);
            next_read = cluster.now + cluster.rng.between(1, opts.read_every * 2);
        }
    }

    // Heal: every node up (but those removed), no partitions, no pauses, a reliable network.
    cluster.heal();
    cluster.drop_percent = 0;
    cluster.duplicate_percent = 0;
    cluster.hostile_percent = 0;
    for sim in cluster.nodes.values() {
        sim.disk.heal();
    }
    let ids: Vec<NodeId> =
        cluster.nodes.keys().copied().filter(|id| !retired.contains(id)).collect();
    for id in &ids {
        cluster.resume(*id)?;
        if !cluster.nodes[id].is_up() {
            cluster.start(*id)?;
        }
    }
    let healed = cluster.now;
    // Liveness: a proposal made after healing is acknowledged and applied on every node within
    // the bound. A proposal can be lost to a leader change, so propose again now and then.
    let deadline = healed + opts.liveness;
    let mut targets = Vec::new();
    let mut next_proposal = healed;
    loop {
        let done = targets
            .iter()
            .filter_map(|command| cluster.checker.acknowledged_index(*command))
            .any(|index| cluster.all_applied(index));
        if done {
            break;
        }
        if cluster.now >= deadline {
            return Err(format!(
                "liveness: no proposal made after healing was applied everywhere within {} ms",
                opts.liveness / 1000
            ));
        }
        if cluster.now >= next_proposal {
            if let Some(leader) = cluster.leader()
                && let Ok((command, _, _)) = cluster.propose(leader)
            {
                targets.push(command);
            }
            next_proposal = cluster.now + 20 * opts.sim.tick;
        }
        let step = cluster.now + opts.sim.tick;
        cluster.run_until_time(step)?;
    }
    report.recovery = cluster.now - healed;
    // Then every node catches up with everything acknowledged (still within the bound).
    // (Proposals from before healing can still be acknowledged meanwhile: compare with the
    // highest acknowledged index as it is at each step.)
    let remaining = deadline.saturating_sub(cluster.now);
    if !cluster.run_until(remaining, |c| c.all_applied(c.checker.max_acknowledged()))? {
        let acknowledged = cluster.checker.max_acknowledged();
        return Err(format!(
            "liveness: not every node applied index {acknowledged} within {} ms of healing",
            opts.liveness / 1000
        ));
    }

    // Every member holds every acknowledged command exactly once.
    let members = cluster.members();
    for (id, sim) in cluster.nodes.iter().filter(|(id, s)| members.contains(id) && s.is_up()) {
        cluster.checker.final_state(*id, &sim.machine.commands, sim.machine.applied)?;
    }
    report.acknowledged = cluster.checker.acknowledged_count();
    report.reads = cluster.reads_served;
    report.snapshots = cluster.snapshots_installed;
    report.hostile = cluster.hostile;
    Ok(report)
}

/// A client proposal, mostly to the leader (or as redirected by a follower).
fn propose(cluster: &mut Cluster, ids: &[NodeId]) {
    let target = match cluster.leader() {
        Some(leader) if cluster.rng.chance(80) => leader,
        _ => ids[cluster.rng.next_u64() as usize % ids.len()],
    };
    if let Err(Error::NotLeader { leader: Some(leader) }) = cluster.propose(target) {
        let _ = cluster.propose(leader);
    }
}

/// One random fault action. Returns how many membership changes it proposed.
fn fault(
    cluster: &mut Cluster,
    ids: &[NodeId],
    retired: &mut Vec<NodeId>,
) -> Result<usize, String> {
    let pick = |cluster: &mut Cluster| ids[cluster.rng.next_u64() as usize % ids.len()];
    let action = cluster.rng.next_u64() % 16;
    cluster.trace(|| format!("fault action {action}, blocked before: {:?}", cluster.blocked));
    match action {
        0 | 1 => {
            let id = pick(cluster);
            cluster.crash(id);
        }
        2 | 3 => {
            // Restart a crashed node, if any.
            let down: Vec<NodeId> =
                ids.iter().copied().filter(|id| !cluster.nodes[id].is_up()).collect();
            if let Some(id) = down.get(cluster.rng.next_u64() as usize % down.len().max(1)) {
                cluster.start(*id)?;
            }
        }
        4 => {
            // A symmetric partition into two random groups.
            let group: Vec<NodeId> =
                ids.iter().copied().filter(|_| cluster.rng.chance(50)).collect();
            cluster.heal();
            cluster.partition(&group);
        }
        5 => {
            // A one-way cut: some node stops hearing from another (or from everyone).
            let to = pick(cluster);
            if cluster.rng.chance(50) {
                let from = pick(cluster);
                cluster.blocked.insert((from, to));
            } else {
                for from in ids {
                    cluster.blocked.insert((*from, to));
                }
            }
        }
        6 | 7 => cluster.heal(),
        8 => {
            let id = pick(cluster);
            if cluster.nodes[&id].paused {
                cluster.resume(id)?;
            } else {
                cluster.pause(id);
            }
        }
        9 => {
            // An unreliable network, or a reliable one again.
            let unreliable = cluster.rng.chance(50);
            cluster.drop_percent = if unreliable { 10 } else { 0 };
            cluster.duplicate_percent = if unreliable { 5 } else { 0 };
        }
        10 => {
            // The leader hands over to a random voter.
            if let Some(leader) = cluster.leader() {
                let to = pick(cluster);
                if let Some(node) = cluster.nodes.get_mut(&leader).and_then(|s| s.node_mut()) {
                    let _ = node.transfer_leadership(to);
                    cluster.drive(leader)?;
                }
            }
        }
        12 if cluster.nodes.len() < cluster.opts.nodes + 2 => {
            // A new node joins as a learner (it starts with an empty log and no configuration:
            // it catches up by appends, or by snapshot once the log is compacted).
            let id = cluster.nodes.keys().next_back().copied().unwrap_or(0) + 1;
            cluster.add_node(id);
            cluster.start(id)?;
            if cluster.conf_change(ConfChange::AddLearner(id)).is_ok() {
                return Ok(1);
            }
        }
        13 => {
            // Promote a learner.
            let learners: Vec<NodeId> = match cluster.leader().and_then(|l| cluster.node(l)) {
                Some(node) => node.status().config.learners.into_iter().collect(),
                None => Vec::new(),
            };
            if let Some(id) = learners.first()
                && cluster.conf_change(ConfChange::Promote(*id)).is_ok()
            {
                return Ok(1);
            }
        }
        14 if retired.is_empty() => {
            // Remove a voter other than the leader, if enough stay; it stays down for good.
            let Some(leader) = cluster.leader() else { return Ok(0) };
            let voters: Vec<NodeId> = match cluster.node(leader) {
                Some(node) => node.status().config.voters.into_iter().collect(),
                None => Vec::new(),
            };
            if voters.len() > 3
                && let Some(id) = voters.iter().copied().find(|v| *v != leader)
                && cluster.conf_change(ConfChange::Remove(id)).is_ok()
            {
                cluster.crash(id);
                retired.push(id);
                return Ok(1);
            }
        }
        15 => {
            // A disk that fails a few changes from now: the node halts there, as a crash.
            let id = pick(cluster);
            let changes = cluster.rng.next_u64() % 6;
            cluster.fail_disk_after(id, changes);
        }
        11 => {
            // Resume everyone paused.
            for id in ids {
                cluster.resume(*id)?;
            }
        }
        _ => {}
    }
    Ok(0)
}
