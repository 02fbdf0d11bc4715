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
/// @notice Lifecycle: post (escrow + task-spec hash) -> assign -> commit result root -> challenge
///         window -> settle (solver paid, fee burned) | challenge -> resolve dispute (winner paid,
///         loser slashed) ; refund after the deadline when no result was committed.
///         Batch anchoring: `commitBatch` anchors the result roots of many jobs as one Merkle
///         root of leaves keccak256(keccak256(abi.encode(jobId, resultRoot))) (the OpenZeppelin
///         StandardMerkleTree leaf), and `settleBatch` settles many jobs with one transfer per
///         solver run and one burn. Fee: `feeBps` of every settled payment is burned
///         (the fee is already in AI tokens, so "buy back and burn" is a direct burn).
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

    struct Job {
        // slot 0: the fields every lifecycle step touches
        address solver;
        Status status;
        uint32 batchId;
        uint56 time; // the commit deadline until a result is committed, then the challenge end
        // slot 1
        address submitter;
        uint96 payment;
        // slot 2 (written only by a challenge)
        address challenger;
        bytes32 specHash;
        bytes32 resultRoot; // written only by a single commit or a challenge
    }

    struct Batch {
        bytes32 root;
        address solver;
    }

    bytes32 public constant RESOLVER_ROLE = keccak256("RESOLVER_ROLE");
    bytes32 public constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");
    uint256 public constant MAX_BPS = 10_000;
    uint256 public constant MAX_FEE_BPS = 1_000;
    uint256 public constant MAX_CHALLENGE_WINDOW = 30 days;

    IERC20 public immutable token;
    Staking public immutable staking;
    uint16 public feeBps;
    uint64 public challengeWindow;
    uint32 public batchCount;
    uint256 public jobCount;
    mapping(uint256 => Job) private _jobs;
    mapping(uint256 => Batch) private _batches;

    event JobPosted(
        uint256 indexed jobId, address indexed submitter, bytes32 specHash, uint256 payment, uint64 deadline
    );
    event JobAssigned(uint256 indexed jobId, address indexed solver);
    event ResultCommitted(uint256 indexed jobId, address indexed solver, bytes32 resultRoot, uint64 challengeEnd);
    event BatchCommitted(
        uint256 indexed batchId, address indexed solver, bytes32 root, uint256[] jobIds, uint64 challengeEnd
    );
    event Challenged(uint256 indexed jobId, address indexed challenger, bytes32 resultRoot);
    event DisputeResolved(uint256 indexed jobId, bool solverWins, address indexed winner, uint256 slashed);
    event JobSettled(uint256 indexed jobId, address indexed solver, uint256 paid, uint256 fee);
    event JobRefunded(uint256 indexed jobId, address indexed submitter, uint256 amount);
    event FeeBurned(uint256 amount);
    event ParameterChanged(bytes32 indexed name, uint256 value);

    error UnknownJob(uint256 jobId);
    error WrongStatus(uint256 jobId, Status status);
    error NotSubmitter(uint256 jobId, address caller);
    error NotSolver(uint256 jobId, address caller);
    error ZeroPayment();
    error InvalidDeadline(uint64 deadline);
    error DeadlinePassed(uint256 jobId, uint64 deadline);
    error DeadlineNotReached(uint256 jobId, uint64 deadline);
    error ChallengeWindowOpen(uint256 jobId, uint64 challengeEnd);
    error ChallengeWindowClosed(uint256 jobId, uint64 challengeEnd);
    error SelfChallenge(uint256 jobId);
    error ResultMismatch(uint256 jobId, bytes32 resultRoot);
    error EmptyBatch();
    error LengthMismatch(uint256 a, uint256 b);
    error NothingToSettle();
    error InvalidParameter(bytes32 name, uint256 value);

    constructor(IERC20 token_, Staking staking_, address admin, uint16 feeBps_, uint64 challengeWindow_) {
        token = token_;
        staking = staking_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setFeeBps(feeBps_);
        _setChallengeWindow(challengeWindow_);
    }

    // ---------------------------------------------------------------- posting

    /// @notice Escrow `payment` (pre-approved) for a job with task spec `specHash`, to be
    ///         committed by `deadline`; `solver` != 0 assigns it at once (needs solver stake).
    function postJob(bytes32 specHash, uint256 payment, uint64 deadline, address solver)
        external
        nonReentrant
        returns (uint256 jobId)
    {
        if (solver != address(0)) staking.requireStake(solver, Staking.Role.Solver);
        jobId = _post(specHash, payment, deadline, solver);
        token.safeTransferFrom(msg.sender, address(this), payment);
    }

    /// @notice Post many jobs with one escrow transfer; returns the first job id (ids are consecutive).
    function postJobs(bytes32[] calldata specHashes, uint256[] calldata payments, uint64 deadline, address solver)
        external
        nonReentrant
        returns (uint256 firstJobId)
    {
        uint256 n = specHashes.length;
        if (n == 0) revert EmptyBatch();
        if (n != payments.length) revert LengthMismatch(n, payments.length);
        if (solver != address(0)) staking.requireStake(solver, Staking.Role.Solver);
        uint256 total;
        firstJobId = jobCount + 1;
        for (uint256 i; i < n; ++i) {
            _post(specHashes[i], payments[i], deadline, solver);
            total += payments[i];
        }
        token.safeTransferFrom(msg.sender, address(this), total);
    }

    function _post(bytes32 specHash, uint256 payment, uint64 deadline, address solver)
        private
        returns (uint256 jobId)
    {
        if (payment == 0) revert ZeroPayment();
        if (deadline <= block.timestamp) revert InvalidDeadline(deadline);
        jobId = ++jobCount;
        Job storage j = _jobs[jobId];
        j.submitter = msg.sender;
        j.time = SafeCast.toUint56(deadline);
        j.payment = SafeCast.toUint96(payment);
        j.specHash = specHash;
        emit JobPosted(jobId, msg.sender, specHash, payment, deadline);
        if (solver == address(0)) {
            j.status = Status.Posted;
        } else {
            j.solver = solver;
            j.status = Status.Assigned;
            emit JobAssigned(jobId, solver);
        }
    }

    /// @notice The submitter assigns a posted job to a staked solver.
    function assign(uint256 jobId, address solver) external {
        Job storage j = _job(jobId);
        if (j.submitter != msg.sender) revert NotSubmitter(jobId, msg.sender);
        if (j.status != Status.Posted) revert WrongStatus(jobId, j.status);
        if (block.timestamp > j.time) revert DeadlinePassed(jobId, uint64(j.time));
        staking.requireStake(solver, Staking.Role.Solver);
        j.solver = solver;
        j.status = Status.Assigned;
        emit JobAssigned(jobId, solver);
    }

    /// @notice The submitter takes back the escrow of a job nobody was assigned to.
    function cancel(uint256 jobId) external nonReentrant {
        Job storage j = _job(jobId);
        if (j.submitter != msg.sender) revert NotSubmitter(jobId, msg.sender);
        if (j.status != Status.Posted) revert WrongStatus(jobId, j.status);
        _refund(jobId, j, Status.Refunded);
    }

    // ------------------------------------------------------------- committing

    /// @notice The assigned solver commits the trace Merkle root of its result; opens the challenge window.
    function commitResult(uint256 jobId, bytes32 resultRoot) external {
        Job storage j = _job(jobId);
        uint64 end = _checkCommit(jobId, j);
        j.resultRoot = resultRoot;
        j.status = Status.Committed;
        j.time = uint56(end);
        emit ResultCommitted(jobId, msg.sender, resultRoot, end);
    }

    /// @notice Anchor the result roots of many of the caller's jobs as one Merkle root of leaves
    ///         (jobId, resultRoot); opens one challenge window for all of them.
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
            j.time = uint56(end);
        }
        emit BatchCommitted(batchId, msg.sender, root, jobIds, end);
    }

    function _checkCommit(uint256 jobId, Job storage j) private view returns (uint64) {
        if (j.status != Status.Assigned) revert WrongStatus(jobId, j.status);
        if (j.solver != msg.sender) revert NotSolver(jobId, msg.sender);
        if (block.timestamp > j.time) revert DeadlinePassed(jobId, uint64(j.time));
        return uint64(block.timestamp) + challengeWindow;
    }

    /// @notice True when `resultRoot` is the committed result of `jobId` (`proof` is the Merkle
    ///         proof of its leaf in the job's batch; empty for a job committed alone).
    function verifyResult(uint256 jobId, bytes32 resultRoot, bytes32[] calldata proof) public view returns (bool) {
        Job storage j = _jobs[jobId];
        if (j.status < Status.Committed || j.status == Status.Refunded) return false;
        if (j.batchId == 0) return j.resultRoot == resultRoot;
        return MerkleProof.verifyCalldata(proof, _batches[j.batchId].root, _leaf(jobId, resultRoot));
    }

    function _leaf(uint256 jobId, bytes32 resultRoot) private pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(jobId, resultRoot))));
    }

    // ------------------------------------------------------------- disputes

    /// @notice A staked verifier disputes the committed `resultRoot` of `jobId` within the window.
    function challenge(uint256 jobId, bytes32 resultRoot, bytes32[] calldata proof) external {
        Job storage j = _job(jobId);
        if (j.status != Status.Committed) revert WrongStatus(jobId, j.status);
        if (block.timestamp >= j.time) revert ChallengeWindowClosed(jobId, uint64(j.time));
        if (msg.sender == j.solver) revert SelfChallenge(jobId);
        staking.requireStake(msg.sender, Staking.Role.Verifier);
        if (!verifyResult(jobId, resultRoot, proof)) revert ResultMismatch(jobId, resultRoot);
        j.challenger = msg.sender;
        j.resultRoot = resultRoot;
        j.status = Status.Disputed;
        emit Challenged(jobId, msg.sender, resultRoot);
    }

    /// @notice The dispute outcome (e.g. the Verde referee's verdict), submitted by RESOLVER_ROLE.
    ///         Solver wins: it is paid (fee burned) and the challenger's verifier stake is slashed.
    ///         Challenger wins: the submitter is refunded and the solver's solver stake is slashed.
    ///         The slash is the role's minimum stake; the honest party gets its reward share.
    function resolveDispute(uint256 jobId, bool solverWins) external onlyRole(RESOLVER_ROLE) nonReentrant {
        Job storage j = _job(jobId);
        if (j.status != Status.Disputed) revert WrongStatus(jobId, j.status);
        address winner;
        uint256 slashed;
        if (solverWins) {
            winner = j.solver;
            _pay(jobId, j);
            slashed = staking.slash(
                j.challenger, Staking.Role.Verifier, staking.minStake(Staking.Role.Verifier), winner
            );
        } else {
            winner = j.challenger;
            _refund(jobId, j, Status.Rejected);
            slashed = staking.slash(j.solver, Staking.Role.Solver, staking.minStake(Staking.Role.Solver), winner);
        }
        emit DisputeResolved(jobId, solverWins, winner, slashed);
    }

    // ------------------------------------------------------------- settlement

    /// @notice Pay the solver of a committed, unchallenged job once its window closed. Anyone may call.
    function settle(uint256 jobId) external nonReentrant {
        Job storage j = _job(jobId);
        if (j.status != Status.Committed) revert WrongStatus(jobId, j.status);
        if (block.timestamp < j.time) revert ChallengeWindowOpen(jobId, uint64(j.time));
        _pay(jobId, j);
    }

    /// @dev Settle one job: its solver gets the payment less the fee, the fee is burned.
    function _pay(uint256 jobId, Job storage j) private {
        j.status = Status.Settled;
        address solver = j.solver;
        uint256 payment = j.payment;
        uint256 fee = _fee(payment);
        emit JobSettled(jobId, solver, payment - fee, fee);
        token.safeTransfer(solver, payment - fee);
        _burnFee(fee);
    }

    /// @notice Settle every job of `jobIds` that is settleable now (committed, window closed);
    ///         skips the others. One transfer per run of equal solvers and one burn.
    /// @return settled how many jobs were settled; reverts NothingToSettle when none.
    function settleBatch(uint256[] calldata jobIds) external nonReentrant returns (uint256 settled) {
        address runSolver;
        uint256 runAmount;
        uint256 totalFee;
        for (uint256 i; i < jobIds.length; ++i) {
            uint256 jobId = jobIds[i];
            Job storage j = _jobs[jobId];
            if (j.status != Status.Committed || block.timestamp < j.time) continue;
            j.status = Status.Settled;
            address solver = j.solver;
            uint256 payment = j.payment;
            uint256 fee = _fee(payment);
            emit JobSettled(jobId, solver, payment - fee, fee);
            if (solver != runSolver) {
                if (runAmount > 0) token.safeTransfer(runSolver, runAmount);
                runSolver = solver;
                runAmount = 0;
            }
            runAmount += payment - fee;
            totalFee += fee;
            ++settled;
        }
        if (settled == 0) revert NothingToSettle();
        if (runAmount > 0) token.safeTransfer(runSolver, runAmount);
        _burnFee(totalFee);
    }

    /// @notice Return the escrow of a job with no committed result after its deadline. Anyone may call.
    function refund(uint256 jobId) external nonReentrant {
        Job storage j = _job(jobId);
        if (j.status != Status.Posted && j.status != Status.Assigned) revert WrongStatus(jobId, j.status);
        if (block.timestamp <= j.time) revert DeadlineNotReached(jobId, uint64(j.time));
        _refund(jobId, j, Status.Refunded);
    }

    function _refund(uint256 jobId, Job storage j, Status status) private {
        j.status = status;
        uint256 amount = j.payment;
        emit JobRefunded(jobId, j.submitter, amount);
        token.safeTransfer(j.submitter, amount);
    }

    function _fee(uint256 payment) private view returns (uint256) {
        return (payment * feeBps) / MAX_BPS;
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

    // ------------------------------------------------------------- views

    /// @notice The full record of `jobId` (status None for an unknown id).
    function getJob(uint256 jobId) external view returns (Job memory) {
        return _jobs[jobId];
    }

    /// @notice The Merkle root and solver of batch `batchId`.
    function getBatch(uint256 batchId) external view returns (Batch memory) {
        return _batches[batchId];
    }

    // ------------------------------------------------------------- governance

    function setFeeBps(uint16 bps) external onlyRole(GOVERNOR_ROLE) {
        _setFeeBps(bps);
    }

    function setChallengeWindow(uint64 window) external onlyRole(GOVERNOR_ROLE) {
        _setChallengeWindow(window);
    }

    function _setFeeBps(uint16 bps) private {
        if (bps > MAX_FEE_BPS) revert InvalidParameter("feeBps", bps);
        feeBps = bps;
        emit ParameterChanged("feeBps", bps);
    }

    function _setChallengeWindow(uint64 window) private {
        if (window == 0 || window > MAX_CHALLENGE_WINDOW) revert InvalidParameter("challengeWindow", window);
        challengeWindow = window;
        emit ParameterChanged("challengeWindow", window);
    }
}
