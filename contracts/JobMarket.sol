// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

import {Staking} from "./Staking.sol";

/// @title Job market and escrow for ML compute.
/// @notice Lifecycle: post (escrow; a group of jobs is one transfer and one event) -> assign
///         (locks the solver's stake for this job) -> commit result root (alone or as a batch
///         Merkle root) -> challenge window (verifiers may attest a matching root, or challenge
///         with their own root and a bond) -> settle (solver paid, fee burned, attesters paid
///         the verifier fee) | dispute: the solver must reveal a batched job's leaf, staked
///         referees vote, and after the dispute window anyone finalizes: the majority decides,
///         the loser's locked stake is slashed, the minority of referees is slashed; a solver
///         that never revealed loses; no majority lets the committed result stand.
///         No account holds an admin role: only GOVERNOR_ROLE (the timelock) sets bounded
///         parameters, and no call moves a party's escrow or stake except by these rules.
contract JobMarket is AccessControl, ReentrancyGuard {
    using SafeERC20 for IERC20;

    enum Status {
        None,
        Posted,
        Assigned,
        Committed,
        Disputed,
        Settled,
        Refunded,
        Rejected
    }

    enum Outcome {
        Open,
        SolverWins,
        SolverLoses,
        Stands
    }

    struct Job {
        // one slot: everything a lifecycle step touches
        Status status;
        bool ownSolver; // assigned by assign(): solver and lock in _assignments
        uint8 attesters;
        uint40 time; // the commit deadline until a result is committed, then the challenge end
        uint32 batchId;
        uint96 payment;
        uint64 groupId;
    }

    struct Group {
        address submitter;
        uint96 minLock; // the minimum solver stake when posted: a job locks max(minLock, payment)
        address solver;
    }

    struct Assignment {
        address solver;
        uint96 lock;
    }

    struct Batch {
        bytes32 root;
        address solver;
    }

    struct Dispute {
        uint40 end;
        Outcome outcome;
        bool revealed;
        uint32 challengers;
        uint32 votesForSolver;
        uint32 votesAgainstSolver;
        uint96 bond; // each challenger's locked verifier stake
        uint96 refereeLock; // each voter's locked referee stake
        bytes32 solverRoot; // the solver's result root once known (single commit or revealed)
        uint256 pool; // the challengers' share of a slashed solver's stake
    }

    struct Attestation {
        address verifier;
        uint96 lock;
    }

    struct JobInfo {
        Status status;
        uint64 time;
        uint32 batchId;
        uint8 attesters;
        uint256 payment;
        uint64 groupId;
        address submitter;
        address solver;
        uint256 lock;
        bytes32 resultRoot;
    }

    bytes32 public constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");
    uint256 public constant MAX_BPS = 10_000;
    uint256 public constant MAX_FEE_BPS = 1_000;
    uint256 public constant MAX_VERIFIER_FEE_BPS = 500;
    uint256 public constant MIN_CHALLENGE_WINDOW = 10 minutes;
    uint256 public constant MAX_CHALLENGE_WINDOW = 30 days;
    uint256 public constant MIN_DISPUTE_WINDOW = 1 hours;
    uint256 public constant MAX_DISPUTE_WINDOW = 30 days;
    uint256 public constant MAX_ATTESTERS = 3;

    IERC20 public immutable token;
    Staking public immutable staking;
    uint16 public feeBps;
    uint16 public verifierFeeBps;
    uint64 public challengeWindow;
    uint64 public disputeWindow;
    uint32 public batchCount;
    uint64 public groupCount;
    uint256 public jobCount;
    mapping(uint256 => Job) private _jobs;
    mapping(uint256 => Group) private _groups;
    mapping(uint256 => Assignment) private _assignments;
    mapping(uint256 => bytes32) private _roots;
    mapping(uint256 => Batch) private _batches;
    mapping(uint256 => Dispute) private _disputes;
    mapping(uint256 => mapping(address => bytes32)) private _challengeRoots;
    mapping(uint256 => mapping(address => uint8)) private _votes; // 1 for the solver, 2 against
    mapping(uint256 => mapping(uint256 => Attestation)) private _attestations;
    mapping(uint256 => mapping(address => bool)) private _attested;

    event JobsPosted(
        uint256 indexed firstJobId,
        address indexed submitter,
        address indexed solver,
        uint64 deadline,
        bytes32[] specHashes,
        uint256[] payments
    );
    event JobAssigned(uint256 indexed jobId, address indexed solver);
    event ResultCommitted(uint256 indexed jobId, address indexed solver, bytes32 resultRoot, uint64 challengeEnd);
    event BatchCommitted(
        uint256 indexed batchId, address indexed solver, bytes32 root, uint256[] jobIds, uint64 challengeEnd
    );
    event Attested(uint256 indexed jobId, address indexed verifier, bytes32 resultRoot);
    event Challenged(uint256 indexed jobId, address indexed challenger, bytes32 resultRoot, uint64 disputeEnd);
    event ResultRevealed(uint256 indexed jobId, bytes32 resultRoot);
    event Voted(uint256 indexed jobId, address indexed referee, bool solverWins);
    event DisputeResolved(uint256 indexed jobId, Outcome outcome, uint256 slashed);
    event Claimed(uint256 indexed jobId, address indexed account, uint256 reward, uint256 slashed);
    event JobSettled(uint256 indexed jobId, address indexed solver, uint256 paid, uint256 fee, uint256 verifierFee);
    event VerifierPaid(uint256 indexed jobId, address indexed verifier, uint256 amount);
    event JobRefunded(uint256 indexed jobId, address indexed submitter, uint256 amount);
    event FeeBurned(uint256 amount);
    event ParameterChanged(bytes32 indexed name, uint256 value);

    error UnknownJob(uint256 jobId);
    error WrongStatus(uint256 jobId, Status status);
    error NotSubmitter(uint256 jobId, address caller);
    error NotSolver(uint256 jobId, address caller);
    error ZeroPayment();
    error ZeroRoot();
    error InvalidDeadline(uint64 deadline);
    error DeadlinePassed(uint256 jobId, uint64 deadline);
    error DeadlineNotReached(uint256 jobId, uint64 deadline);
    error ChallengeWindowOpen(uint256 jobId, uint64 challengeEnd);
    error ChallengeWindowClosed(uint256 jobId, uint64 challengeEnd);
    error DisputeOpen(uint256 jobId, uint64 disputeEnd);
    error DisputeClosed(uint256 jobId, uint64 disputeEnd);
    error SelfChallenge(uint256 jobId);
    error SameResult(uint256 jobId, bytes32 resultRoot);
    error AlreadyChallenged(uint256 jobId, address challenger);
    error AlreadyRevealed(uint256 jobId);
    error NotRevealed(uint256 jobId);
    error AlreadyVoted(uint256 jobId, address referee);
    error ConflictOfInterest(uint256 jobId, address referee);
    error AlreadyAttested(uint256 jobId, address verifier);
    error AttestersFull(uint256 jobId);
    error NothingToClaim(uint256 jobId, address account);
    error ResultMismatch(uint256 jobId, bytes32 resultRoot);
    error EmptyBatch();
    error LengthMismatch(uint256 a, uint256 b);
    error NothingToSettle();
    error InvalidParameter(bytes32 name, uint256 value);

    constructor(
        IERC20 token_,
        Staking staking_,
        address governance,
        uint16 feeBps_,
        uint64 challengeWindow_,
        uint64 disputeWindow_,
        uint16 verifierFeeBps_
    ) {
        token = token_;
        staking = staking_;
        _grantRole(GOVERNOR_ROLE, governance); // nobody holds DEFAULT_ADMIN_ROLE: roles are fixed
        _setFeeBps(feeBps_);
        _setChallengeWindow(challengeWindow_);
        _setDisputeWindow(disputeWindow_);
        _setVerifierFeeBps(verifierFeeBps_);
    }

    // ---------------------------------------------------------------- posting

    /// @notice Escrow `payment` (pre-approved) for a job with task spec `specHash`, to be
    ///         committed by `deadline`; `solver` != 0 assigns it at once and locks its stake.
    function postJob(bytes32 specHash, uint256 payment, uint64 deadline, address solver)
        external
        nonReentrant
        returns (uint256 jobId)
    {
        bytes32[] memory specs = new bytes32[](1);
        uint256[] memory payments = new uint256[](1);
        specs[0] = specHash;
        payments[0] = payment;
        return _post(specs, payments, deadline, solver);
    }

    /// @notice Post many jobs with one escrow transfer, one stake lock and one event; returns the
    ///         first job id (ids are consecutive).
    function postJobs(bytes32[] calldata specHashes, uint256[] calldata payments, uint64 deadline, address solver)
        external
        nonReentrant
        returns (uint256 firstJobId)
    {
        return _post(specHashes, payments, deadline, solver);
    }

    function _post(bytes32[] memory specHashes, uint256[] memory payments, uint64 deadline, address solver)
        private
        returns (uint256 firstJobId)
    {
        uint256 n = specHashes.length;
        if (n == 0) revert EmptyBatch();
        if (n != payments.length) revert LengthMismatch(n, payments.length);
        if (deadline <= block.timestamp) revert InvalidDeadline(deadline);
        uint64 groupId = ++groupCount;
        uint256 minLock = staking.minStake(Staking.Role.Solver);
        _groups[groupId] = Group(msg.sender, SafeCast.toUint96(minLock), solver);
        firstJobId = jobCount + 1;
        (uint256 total, uint256 lockTotal) = _storeJobs(
            firstJobId, payments, solver == address(0) ? Status.Posted : Status.Assigned, deadline, groupId, minLock
        );
        jobCount += n;
        emit JobsPosted(firstJobId, msg.sender, solver, deadline, specHashes, payments);
        if (solver != address(0)) staking.lock(solver, Staking.Role.Solver, lockTotal);
        token.safeTransferFrom(msg.sender, address(this), total);
    }

    function _storeJobs(
        uint256 firstJobId,
        uint256[] memory payments,
        Status status,
        uint64 deadline,
        uint64 groupId,
        uint256 minLock
    ) private returns (uint256 total, uint256 lockTotal) {
        uint40 time = SafeCast.toUint40(deadline);
        for (uint256 i; i < payments.length; ++i) {
            uint256 payment = payments[i];
            if (payment == 0) revert ZeroPayment();
            _jobs[firstJobId + i] = Job(status, false, 0, time, 0, SafeCast.toUint96(payment), groupId);
            total += payment;
            lockTotal += payment > minLock ? payment : minLock;
        }
    }

    /// @notice The submitter assigns a posted job to a solver, locking max(min stake, payment)
    ///         of its free solver stake until the job closes.
    function assign(uint256 jobId, address solver) external {
        Job storage j = _job(jobId);
        if (_groups[j.groupId].submitter != msg.sender) revert NotSubmitter(jobId, msg.sender);
        if (j.status != Status.Posted) revert WrongStatus(jobId, j.status);
        if (block.timestamp > j.time) revert DeadlinePassed(jobId, uint64(j.time));
        uint256 minLock = staking.minStake(Staking.Role.Solver);
        uint256 lock = j.payment > minLock ? j.payment : minLock;
        staking.lock(solver, Staking.Role.Solver, lock);
        _assignments[jobId] = Assignment(solver, SafeCast.toUint96(lock));
        j.ownSolver = true;
        j.status = Status.Assigned;
        emit JobAssigned(jobId, solver);
    }

    /// @notice The submitter takes back the escrow of a job nobody was assigned to.
    function cancel(uint256 jobId) external nonReentrant {
        Job storage j = _job(jobId);
        if (_groups[j.groupId].submitter != msg.sender) revert NotSubmitter(jobId, msg.sender);
        if (j.status != Status.Posted) revert WrongStatus(jobId, j.status);
        _refund(jobId, j, Status.Refunded);
    }

    // ------------------------------------------------------------- committing

    /// @notice The assigned solver commits the (nonzero) trace Merkle root of its result; opens
    ///         the challenge window.
    function commitResult(uint256 jobId, bytes32 resultRoot) external {
        if (resultRoot == bytes32(0)) revert ZeroRoot();
        Job storage j = _job(jobId);
        uint64 end = _checkCommit(jobId, j);
        _roots[jobId] = resultRoot;
        j.status = Status.Committed;
        j.time = uint40(end);
        emit ResultCommitted(jobId, msg.sender, resultRoot, end);
    }

    /// @notice Anchor the result roots of many of the caller's jobs as one Merkle root of leaves
    ///         (jobId, resultRoot); opens one challenge window for all of them. The solver must
    ///         keep the tree: a challenged job's leaf has to be revealed within its dispute window.
    function commitBatch(uint256[] calldata jobIds, bytes32 root) external returns (uint32 batchId) {
        uint256 n = jobIds.length;
        if (n == 0) revert EmptyBatch();
        batchId = ++batchCount;
        _batches[batchId] = Batch(root, msg.sender);
        uint64 end;
        for (uint256 i; i < n; ++i) {
            uint256 jobId = jobIds[i];
            Job storage j = _job(jobId);
            end = _checkCommit(jobId, j);
            j.status = Status.Committed;
            j.batchId = batchId;
            j.time = uint40(end);
        }
        emit BatchCommitted(batchId, msg.sender, root, jobIds, end);
    }

    function _checkCommit(uint256 jobId, Job storage j) private view returns (uint64) {
        if (j.status != Status.Assigned) revert WrongStatus(jobId, j.status);
        if (_solverOf(jobId, j) != msg.sender) revert NotSolver(jobId, msg.sender);
        if (block.timestamp > j.time) revert DeadlinePassed(jobId, uint64(j.time));
        return uint64(block.timestamp) + challengeWindow;
    }

    /// @notice Whether `resultRoot` is `jobId`'s committed result (`proof`: the Merkle proof of
    ///         its leaf in the job's batch; empty for a job committed alone).
    function verifyResult(uint256 jobId, bytes32 resultRoot, bytes32[] calldata proof) public view returns (bool) {
        Job storage j = _jobs[jobId];
        if (j.status < Status.Committed || j.status == Status.Refunded) return false;
        if (j.batchId == 0) return _roots[jobId] == resultRoot;
        return MerkleProof.verifyCalldata(proof, _batches[j.batchId].root, _leaf(jobId, resultRoot));
    }

    function _leaf(uint256 jobId, bytes32 resultRoot) private pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(jobId, resultRoot))));
    }

    // ------------------------------------------------------------- verification

    /// @notice A verifier that recomputed `jobId` attests the committed root (with its proof)
    ///         within the challenge window, locking its minimum verifier stake until the job
    ///         closes. At settlement the first MAX_ATTESTERS attesters share `verifierFeeBps`
    ///         of the payment; if the solver loses a dispute instead, their locks are slashed.
    function attest(uint256 jobId, bytes32 resultRoot, bytes32[] calldata proof) external {
        Job storage j = _job(jobId);
        if (j.status != Status.Committed) revert WrongStatus(jobId, j.status);
        if (block.timestamp >= j.time) revert ChallengeWindowClosed(jobId, uint64(j.time));
        if (msg.sender == _solverOf(jobId, j)) revert SelfChallenge(jobId);
        if (!verifyResult(jobId, resultRoot, proof)) revert ResultMismatch(jobId, resultRoot);
        if (_attested[jobId][msg.sender]) revert AlreadyAttested(jobId, msg.sender);
        uint8 n = j.attesters;
        if (n >= MAX_ATTESTERS) revert AttestersFull(jobId);
        uint256 lock = staking.minStake(Staking.Role.Verifier);
        staking.lock(msg.sender, Staking.Role.Verifier, lock);
        _attested[jobId][msg.sender] = true;
        _attestations[jobId][n] = Attestation(msg.sender, SafeCast.toUint96(lock));
        j.attesters = n + 1;
        emit Attested(jobId, msg.sender, resultRoot);
    }

    // ------------------------------------------------------------- disputes

    /// @notice Dispute `jobId`'s result within the challenge window by committing the caller's
    ///         own (nonzero) `resultRoot`; locks the minimum verifier stake as a bond. Any number
    ///         of verifiers may challenge the same job, each with its own bond and root; no proof
    ///         of the solver's leaf is needed (a batched solver must reveal it instead).
    function challenge(uint256 jobId, bytes32 resultRoot) external {
        if (resultRoot == bytes32(0)) revert ZeroRoot();
        Job storage j = _job(jobId);
        if (j.status != Status.Committed && j.status != Status.Disputed) revert WrongStatus(jobId, j.status);
        if (block.timestamp >= j.time) revert ChallengeWindowClosed(jobId, uint64(j.time));
        if (msg.sender == _solverOf(jobId, j)) revert SelfChallenge(jobId);
        Dispute storage d = _disputes[jobId];
        if (j.status == Status.Committed) {
            j.status = Status.Disputed;
            d.end = SafeCast.toUint40(uint256(j.time) + disputeWindow);
            d.bond = SafeCast.toUint96(staking.minStake(Staking.Role.Verifier));
            d.refereeLock = SafeCast.toUint96(staking.minStake(Staking.Role.Referee));
            if (j.batchId == 0) {
                d.revealed = true;
                d.solverRoot = _roots[jobId];
            }
        }
        if (_challengeRoots[jobId][msg.sender] != bytes32(0)) revert AlreadyChallenged(jobId, msg.sender);
        if (d.revealed && resultRoot == d.solverRoot) revert SameResult(jobId, resultRoot);
        staking.lock(msg.sender, Staking.Role.Verifier, d.bond);
        _challengeRoots[jobId][msg.sender] = resultRoot;
        d.challengers += 1;
        emit Challenged(jobId, msg.sender, resultRoot, uint64(d.end));
    }

    /// @notice Reveal a disputed batched job's committed leaf (anyone holding the tree, normally
    ///         its solver) before the dispute window ends; unrevealed, the solver loses.
    function reveal(uint256 jobId, bytes32 resultRoot, bytes32[] calldata proof) external {
        Job storage j = _job(jobId);
        if (j.status != Status.Disputed) revert WrongStatus(jobId, j.status);
        Dispute storage d = _disputes[jobId];
        if (d.revealed) revert AlreadyRevealed(jobId);
        if (block.timestamp >= d.end) revert DisputeClosed(jobId, uint64(d.end));
        if (!verifyResult(jobId, resultRoot, proof)) revert ResultMismatch(jobId, resultRoot);
        d.revealed = true;
        d.solverRoot = resultRoot;
        emit ResultRevealed(jobId, resultRoot);
    }

    /// @notice A referee's verdict on the solver's (revealed) result, before the dispute window
    ///         ends; locks the minimum referee stake. Neither the solver, the submitter nor a
    ///         challenger of the job may vote.
    function vote(uint256 jobId, bool solverWins) external {
        Job storage j = _job(jobId);
        if (j.status != Status.Disputed) revert WrongStatus(jobId, j.status);
        Dispute storage d = _disputes[jobId];
        if (!d.revealed) revert NotRevealed(jobId);
        if (block.timestamp >= d.end) revert DisputeClosed(jobId, uint64(d.end));
        if (
            msg.sender == _solverOf(jobId, j) || msg.sender == _groups[j.groupId].submitter
                || _challengeRoots[jobId][msg.sender] != bytes32(0)
        ) revert ConflictOfInterest(jobId, msg.sender);
        if (_votes[jobId][msg.sender] != 0) revert AlreadyVoted(jobId, msg.sender);
        staking.lock(msg.sender, Staking.Role.Referee, d.refereeLock);
        _votes[jobId][msg.sender] = solverWins ? 1 : 2;
        if (solverWins) d.votesForSolver += 1;
        else d.votesAgainstSolver += 1;
        emit Voted(jobId, msg.sender, solverWins);
    }

    /// @notice Close a dispute once its window is over (anyone): an unrevealed batched result
    ///         loses; otherwise the referees' majority decides; no majority lets the committed
    ///         result stand. Solver loses: submitter refunded, the solver's job lock slashed (its
    ///         reward share pooled for the challengers), attesters' locks slashed. Otherwise the
    ///         solver is paid as in `settle`. Bonds and votes are then settled by `claim`.
    function finalize(uint256 jobId) external nonReentrant returns (Outcome outcome) {
        Job storage j = _job(jobId);
        if (j.status != Status.Disputed) revert WrongStatus(jobId, j.status);
        Dispute storage d = _disputes[jobId];
        if (block.timestamp < d.end) revert DisputeOpen(jobId, uint64(d.end));
        if (!d.revealed || d.votesAgainstSolver > d.votesForSolver) outcome = Outcome.SolverLoses;
        else if (d.votesForSolver > d.votesAgainstSolver) outcome = Outcome.SolverWins;
        else outcome = Outcome.Stands;
        d.outcome = outcome;
        address solver = _solverOf(jobId, j);
        uint256 lock = _lockOf(jobId, j);
        uint256 slashed;
        if (outcome == Outcome.SolverLoses) {
            _refund(jobId, j, Status.Rejected);
            d.pool = staking.slashLocked(solver, Staking.Role.Solver, lock, address(this));
            slashed = lock;
            for (uint256 i; i < j.attesters; ++i) {
                Attestation storage a = _attestations[jobId][i];
                staking.slashLocked(a.verifier, Staking.Role.Verifier, a.lock, address(0));
                slashed += a.lock;
            }
        } else {
            _pay(jobId, j, solver, lock);
        }
        emit DisputeResolved(jobId, outcome, slashed);
    }

    /// @notice Settle `account`'s challenge bond and referee vote on a finalized dispute (anyone
    ///         may call). A challenger is right when its root differs from a losing solver's
    ///         root, or equals a winning solver's: its bond is released (plus an equal share of
    ///         the pool when the solver lost); otherwise its bond is slashed (reward share to a
    ///         winning solver). A referee in the majority is released, in the minority slashed
    ///         (burned); with no majority every lock is released.
    function claim(uint256 jobId, address account) external nonReentrant returns (uint256 reward, uint256 slashed) {
        Dispute storage d = _disputes[jobId];
        Outcome outcome = d.outcome;
        if (outcome == Outcome.Open) revert WrongStatus(jobId, _jobs[jobId].status);
        bytes32 root = _challengeRoots[jobId][account];
        uint8 v = _votes[jobId][account];
        if (root == bytes32(0) && v == 0) revert NothingToClaim(jobId, account);
        if (root != bytes32(0)) {
            delete _challengeRoots[jobId][account];
            bool matches = d.revealed && root == d.solverRoot;
            if (outcome == Outcome.SolverLoses && !matches) {
                staking.unlock(account, Staking.Role.Verifier, d.bond);
                reward = d.pool / d.challengers;
            } else if (outcome == Outcome.Stands || (outcome == Outcome.SolverWins && matches)) {
                staking.unlock(account, Staking.Role.Verifier, d.bond);
            } else {
                address beneficiary = outcome == Outcome.SolverWins ? _solverOf(jobId, _jobs[jobId]) : address(0);
                staking.slashLocked(account, Staking.Role.Verifier, d.bond, beneficiary);
                slashed = d.bond;
            }
        }
        if (v != 0) {
            delete _votes[jobId][account];
            bool minority = (outcome == Outcome.SolverWins && v == 2) || (outcome == Outcome.SolverLoses && v == 1);
            if (minority) {
                staking.slashLocked(account, Staking.Role.Referee, d.refereeLock, address(0));
                slashed += d.refereeLock;
            } else {
                staking.unlock(account, Staking.Role.Referee, d.refereeLock);
            }
        }
        emit Claimed(jobId, account, reward, slashed);
        if (reward > 0) token.safeTransfer(account, reward);
    }

    // ------------------------------------------------------------- settlement

    /// @notice Pay the solver of a committed, unchallenged job once its window closed. Anyone may call.
    function settle(uint256 jobId) external nonReentrant {
        Job storage j = _job(jobId);
        if (j.status != Status.Committed) revert WrongStatus(jobId, j.status);
        if (block.timestamp < j.time) revert ChallengeWindowOpen(jobId, uint64(j.time));
        _pay(jobId, j, _solverOf(jobId, j), _lockOf(jobId, j));
    }

    /// @dev Settle one job: the solver gets the payment less the fees and its lock back, the
    ///      attesters share the verifier fee and get their locks back, the fee is burned.
    function _pay(uint256 jobId, Job storage j, address solver, uint256 lock) private {
        j.status = Status.Settled;
        uint256 payment = j.payment;
        uint256 fee = (payment * feeBps) / MAX_BPS;
        uint256 n = j.attesters;
        uint256 verifierFee = n == 0 ? 0 : (payment * verifierFeeBps) / MAX_BPS;
        emit JobSettled(jobId, solver, payment - fee - verifierFee, fee, verifierFee);
        token.safeTransfer(solver, payment - fee - verifierFee);
        staking.unlock(solver, Staking.Role.Solver, lock);
        for (uint256 i; i < n; ++i) {
            Attestation storage a = _attestations[jobId][i];
            uint256 share = i + 1 == n ? verifierFee - (verifierFee / n) * i : verifierFee / n;
            emit VerifierPaid(jobId, a.verifier, share);
            if (share > 0) token.safeTransfer(a.verifier, share);
            staking.unlock(a.verifier, Staking.Role.Verifier, a.lock);
        }
        _burnFee(fee);
    }

    /// @notice Settle every job of `jobIds` that is settleable now (committed, window closed);
    ///         skips the others. One transfer and one stake unlock per run of equal solvers, one burn.
    /// @return settled how many jobs were settled; reverts NothingToSettle when none.
    function settleBatch(uint256[] calldata jobIds) external nonReentrant returns (uint256 settled) {
        address runSolver;
        uint256 runAmount;
        uint256 runLock;
        uint256 totalFee;
        for (uint256 i; i < jobIds.length; ++i) {
            uint256 jobId = jobIds[i];
            Job storage j = _jobs[jobId];
            if (j.status != Status.Committed || block.timestamp < j.time) continue;
            ++settled;
            address solver = _solverOf(jobId, j);
            uint256 lock = _lockOf(jobId, j);
            if (j.attesters > 0) {
                _pay(jobId, j, solver, lock);
                continue;
            }
            j.status = Status.Settled;
            uint256 payment = j.payment;
            uint256 fee = (payment * feeBps) / MAX_BPS;
            emit JobSettled(jobId, solver, payment - fee, fee, 0);
            if (solver != runSolver) {
                _flush(runSolver, runAmount, runLock);
                runSolver = solver;
                runAmount = 0;
                runLock = 0;
            }
            runAmount += payment - fee;
            runLock += lock;
            totalFee += fee;
        }
        if (settled == 0) revert NothingToSettle();
        _flush(runSolver, runAmount, runLock);
        _burnFee(totalFee);
    }

    function _flush(address solver, uint256 amount, uint256 lock) private {
        if (amount > 0) token.safeTransfer(solver, amount);
        if (lock > 0) staking.unlock(solver, Staking.Role.Solver, lock);
    }

    /// @notice Return the escrow of a job with no committed result after its deadline, and the
    ///         assigned solver's lock. Anyone may call.
    function refund(uint256 jobId) external nonReentrant {
        Job storage j = _job(jobId);
        Status status = j.status;
        if (status != Status.Posted && status != Status.Assigned) revert WrongStatus(jobId, status);
        if (block.timestamp <= j.time) revert DeadlineNotReached(jobId, uint64(j.time));
        _refund(jobId, j, Status.Refunded);
        if (status == Status.Assigned) staking.unlock(_solverOf(jobId, j), Staking.Role.Solver, _lockOf(jobId, j));
    }

    function _refund(uint256 jobId, Job storage j, Status status) private {
        j.status = status;
        uint256 amount = j.payment;
        address submitter = _groups[j.groupId].submitter;
        emit JobRefunded(jobId, submitter, amount);
        token.safeTransfer(submitter, amount);
    }

    function _burnFee(uint256 fee) private {
        if (fee == 0) return;
        ERC20Burnable(address(token)).burn(fee);
        emit FeeBurned(fee);
    }

    function _job(uint256 jobId) private view returns (Job storage j) {
        j = _jobs[jobId];
        if (j.status == Status.None) revert UnknownJob(jobId);
    }

    function _solverOf(uint256 jobId, Job storage j) private view returns (address) {
        return j.ownSolver ? _assignments[jobId].solver : _groups[j.groupId].solver;
    }

    function _lockOf(uint256 jobId, Job storage j) private view returns (uint256) {
        if (j.ownSolver) return _assignments[jobId].lock;
        uint256 minLock = _groups[j.groupId].minLock;
        return j.payment > minLock ? j.payment : minLock;
    }

    // ------------------------------------------------------------- views

    /// @notice The full record of `jobId` (status None for an unknown id).
    function getJob(uint256 jobId) external view returns (JobInfo memory info) {
        Job storage j = _jobs[jobId];
        info.status = j.status;
        info.time = j.time;
        info.batchId = j.batchId;
        info.attesters = j.attesters;
        info.payment = j.payment;
        info.groupId = j.groupId;
        if (j.status == Status.None) return info;
        info.submitter = _groups[j.groupId].submitter;
        info.solver = _solverOf(jobId, j);
        info.lock = info.solver == address(0) ? 0 : _lockOf(jobId, j);
        info.resultRoot = _roots[jobId];
    }

    /// @notice The dispute record of `jobId` (end 0 when never challenged).
    function getDispute(uint256 jobId) external view returns (Dispute memory) {
        return _disputes[jobId];
    }

    /// @notice The root `challenger` committed against `jobId` (zero: none, or already claimed).
    function challengeOf(uint256 jobId, address challenger) external view returns (bytes32) {
        return _challengeRoots[jobId][challenger];
    }

    /// @notice `referee`'s unclaimed vote on `jobId`: 0 none, 1 for the solver, 2 against.
    function voteOf(uint256 jobId, address referee) external view returns (uint8) {
        return _votes[jobId][referee];
    }

    /// @notice The `index`-th attestation of `jobId`.
    function attestationOf(uint256 jobId, uint256 index) external view returns (Attestation memory) {
        return _attestations[jobId][index];
    }

    /// @notice The Merkle root and solver of batch `batchId`.
    function getBatch(uint256 batchId) external view returns (Batch memory) {
        return _batches[batchId];
    }

    // ------------------------------------------------------------- governance

    function setFeeBps(uint16 bps) external onlyRole(GOVERNOR_ROLE) {
        _setFeeBps(bps);
    }

    function setVerifierFeeBps(uint16 bps) external onlyRole(GOVERNOR_ROLE) {
        _setVerifierFeeBps(bps);
    }

    function setChallengeWindow(uint64 window) external onlyRole(GOVERNOR_ROLE) {
        _setChallengeWindow(window);
    }

    function setDisputeWindow(uint64 window) external onlyRole(GOVERNOR_ROLE) {
        _setDisputeWindow(window);
    }

    function _setFeeBps(uint16 bps) private {
        if (bps > MAX_FEE_BPS) revert InvalidParameter("feeBps", bps);
        feeBps = bps;
        emit ParameterChanged("feeBps", bps);
    }

    function _setVerifierFeeBps(uint16 bps) private {
        if (bps > MAX_VERIFIER_FEE_BPS) revert InvalidParameter("verifierFeeBps", bps);
        verifierFeeBps = bps;
        emit ParameterChanged("verifierFeeBps", bps);
    }

    function _setChallengeWindow(uint64 window) private {
        if (window < MIN_CHALLENGE_WINDOW || window > MAX_CHALLENGE_WINDOW) {
            revert InvalidParameter("challengeWindow", window);
        }
        challengeWindow = window;
        emit ParameterChanged("challengeWindow", window);
    }

    function _setDisputeWindow(uint64 window) private {
        if (window < MIN_DISPUTE_WINDOW || window > MAX_DISPUTE_WINDOW) {
            revert InvalidParameter("disputeWindow", window);
        }
        disputeWindow = window;
        emit ParameterChanged("disputeWindow", window);
    }
}
