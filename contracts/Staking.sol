// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

/// @title Staking for the solver, verifier and referee roles.
/// @notice Stake leaves this contract only two ways: `withdraw` after the unbonding delay, or a
///         slash of stake the job market locked for one open job, challenge, attestation or vote.
///         The market is bound once at deployment (`bindMarket`, by the deployer, once) and no
///         account holds a role that can change it or slash: there is no admin.
///         Locked stake is part of the active stake but cannot be unbonded until the market
///         releases it, so an open obligation is always backed: one lock per obligation.
///         A slash pays `rewardShareBps` (at most 50%) to the honest party and burns the rest.
contract Staking is AccessControl, ReentrancyGuard {
    using SafeERC20 for IERC20;

    enum Role {
        Solver,
        Verifier,
        Referee
    }

    struct Position {
        uint128 active; // includes `locked`
        uint128 unbonding;
        uint128 locked;
        uint64 releaseAt;
    }

    bytes32 public constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");
    uint256 public constant MAX_BPS = 10_000;
    uint256 public constant MAX_REWARD_SHARE_BPS = 5_000;
    uint256 public constant MIN_UNBONDING_DELAY = 1 days;
    uint256 public constant MAX_UNBONDING_DELAY = 90 days;
    uint256 public constant MIN_STAKE_FLOOR = 1e15;
    uint256 public constant MIN_STAKE_CEILING = 1e27;

    IERC20 public immutable token;
    address private immutable _deployer;
    address public market;
    uint64 public unbondingDelay;
    uint16 public rewardShareBps;
    uint256 public totalStaked;
    mapping(Role => uint256) public minStake;
    mapping(address => mapping(Role => Position)) private _positions;

    event Staked(address indexed account, Role indexed role, uint256 amount);
    event UnbondRequested(address indexed account, Role indexed role, uint256 amount, uint64 releaseAt);
    event Withdrawn(address indexed account, Role indexed role, uint256 amount);
    event Locked(address indexed account, Role indexed role, uint256 amount);
    event Unlocked(address indexed account, Role indexed role, uint256 amount);
    event Slashed(
        address indexed account, Role indexed role, uint256 amount, address indexed beneficiary, uint256 reward, uint256 burned
    );
    event ParameterChanged(bytes32 indexed name, uint256 value);

    error ZeroAmount();
    error InsufficientStake(address account, Role role, uint256 available, uint256 required);
    error NothingToWithdraw(address account, Role role);
    error StillUnbonding(uint64 releaseAt, uint64 nowTs);
    error InvalidParameter(bytes32 name, uint256 value);
    error NotMarket(address caller);
    error MarketAlreadyBound(address market);

    constructor(
        IERC20 token_,
        address governance,
        uint64 unbondingDelay_,
        uint16 rewardShareBps_,
        uint256 minSolverStake,
        uint256 minVerifierStake,
        uint256 minRefereeStake
    ) {
        token = token_;
        _deployer = msg.sender;
        _grantRole(GOVERNOR_ROLE, governance); // nobody holds DEFAULT_ADMIN_ROLE: roles are fixed
        _setUnbondingDelay(unbondingDelay_);
        _setRewardShareBps(rewardShareBps_);
        _setMinStake(Role.Solver, minSolverStake);
        _setMinStake(Role.Verifier, minVerifierStake);
        _setMinStake(Role.Referee, minRefereeStake);
    }

    /// @notice Bind the job market, the only contract that may lock, unlock and slash. Once,
    ///         by the deployer; reverts MarketAlreadyBound afterwards.
    function bindMarket(address market_) external {
        if (msg.sender != _deployer) revert NotMarket(msg.sender);
        if (market != address(0)) revert MarketAlreadyBound(market);
        market = market_;
    }

    modifier onlyMarket() {
        if (msg.sender != market) revert NotMarket(msg.sender);
        _;
    }

    /// @notice Lock `amount` tokens (pre-approved) as stake for `role`.
    function stake(Role role, uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        Position storage p = _positions[msg.sender][role];
        p.active += SafeCast.toUint128(amount);
        totalStaked += amount;
        token.safeTransferFrom(msg.sender, address(this), amount);
        emit Staked(msg.sender, role, amount);
    }

    /// @notice Start unbonding `amount` of free (active, unlocked) stake; restarts the delay for
    ///         the whole unbonding amount. Locked stake cannot be unbonded.
    function requestUnbond(Role role, uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        Position storage p = _positions[msg.sender][role];
        uint256 free = p.active - p.locked;
        if (free < amount) revert InsufficientStake(msg.sender, role, free, amount);
        p.active -= uint128(amount);
        p.unbonding += uint128(amount);
        uint64 releaseAt = uint64(block.timestamp) + unbondingDelay;
        p.releaseAt = releaseAt;
        emit UnbondRequested(msg.sender, role, amount, releaseAt);
    }

    /// @notice Withdraw all unbonded stake for `role` once its delay has passed.
    function withdraw(Role role) external nonReentrant returns (uint256 amount) {
        Position storage p = _positions[msg.sender][role];
        amount = p.unbonding;
        if (amount == 0) revert NothingToWithdraw(msg.sender, role);
        if (block.timestamp < p.releaseAt) revert StillUnbonding(p.releaseAt, uint64(block.timestamp));
        p.unbonding = 0;
        p.releaseAt = 0;
        totalStaked -= amount;
        token.safeTransfer(msg.sender, amount);
        emit Withdrawn(msg.sender, role, amount);
    }

    /// @notice Lock `amount` of `account`'s free stake for one obligation (market only).
    ///         Reverts InsufficientStake when the free stake is smaller.
    function lock(address account, Role role, uint256 amount) external onlyMarket {
        Position storage p = _positions[account][role];
        uint256 free = p.active - p.locked;
        if (amount == 0 || free < amount) revert InsufficientStake(account, role, free, amount);
        p.locked += uint128(amount);
        emit Locked(account, role, amount);
    }

    /// @notice Release `amount` of `account`'s locked stake (market only).
    function unlock(address account, Role role, uint256 amount) external onlyMarket {
        _positions[account][role].locked -= SafeCast.toUint128(amount);
        emit Unlocked(account, role, amount);
    }

    /// @notice Slash `amount` of `account`'s locked stake (market only, for a lost obligation):
    ///         the reward share goes to `beneficiary` (all burned when it is the zero address).
    function slashLocked(address account, Role role, uint256 amount, address beneficiary)
        external
        onlyMarket
        nonReentrant
        returns (uint256 reward)
    {
        Position storage p = _positions[account][role];
        uint128 a = SafeCast.toUint128(amount);
        p.locked -= a;
        p.active -= a;
        totalStaked -= amount;
        reward = beneficiary == address(0) ? 0 : (amount * rewardShareBps) / MAX_BPS;
        uint256 burned = amount - reward;
        if (reward > 0) token.safeTransfer(beneficiary, reward);
        if (burned > 0) ERC20Burnable(address(token)).burn(burned);
        emit Slashed(account, role, amount, beneficiary, reward, burned);
    }

    /// @notice (active, unbonding, releaseAt) of `account` for `role`; active includes locked.
    function positionOf(address account, Role role) external view returns (uint256, uint256, uint64) {
        Position storage p = _positions[account][role];
        return (p.active, p.unbonding, p.releaseAt);
    }

    /// @notice Stake of `account` for `role` locked by open obligations.
    function lockedOf(address account, Role role) external view returns (uint256) {
        return _positions[account][role].locked;
    }

    /// @notice Active (not unbonding) stake of `account` for `role`.
    function activeStake(address account, Role role) external view returns (uint256) {
        return _positions[account][role].active;
    }

    function setUnbondingDelay(uint64 delay) external onlyRole(GOVERNOR_ROLE) {
        _setUnbondingDelay(delay);
    }

    function setRewardShareBps(uint16 bps) external onlyRole(GOVERNOR_ROLE) {
        _setRewardShareBps(bps);
    }

    function setMinStake(Role role, uint256 amount) external onlyRole(GOVERNOR_ROLE) {
        _setMinStake(role, amount);
    }

    function _setMinStake(Role role, uint256 amount) private {
        bytes32 name = role == Role.Solver
            ? bytes32("minSolverStake")
            : role == Role.Verifier ? bytes32("minVerifierStake") : bytes32("minRefereeStake");
        if (amount < MIN_STAKE_FLOOR || amount > MIN_STAKE_CEILING) revert InvalidParameter(name, amount);
        minStake[role] = amount;
        emit ParameterChanged(name, amount);
    }

    function _setUnbondingDelay(uint64 delay) private {
        if (delay < MIN_UNBONDING_DELAY || delay > MAX_UNBONDING_DELAY) {
            revert InvalidParameter("unbondingDelay", delay);
        }
        unbondingDelay = delay;
        emit ParameterChanged("unbondingDelay", delay);
    }

    function _setRewardShareBps(uint16 bps) private {
        if (bps > MAX_REWARD_SHARE_BPS) revert InvalidParameter("rewardShareBps", bps);
        rewardShareBps = bps;
        emit ParameterChanged("rewardShareBps", bps);
    }
}
