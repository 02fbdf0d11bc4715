// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

/// @title Staking for the solver and verifier roles.
/// @notice Stake leaves this contract only two ways: `withdraw` after the unbonding delay, or
///         `slash`, callable only by SLASHER_ROLE (the job market's dispute outcome path).
///         A slash takes from the active stake first, then from stake still unbonding, pays
///         `rewardShareBps` of it to the honest party and burns the rest.
contract Staking is AccessControl, ReentrancyGuard {
    using SafeERC20 for IERC20;

    enum Role {
        Solver,
        Verifier
    }

    struct Position {
        uint128 active;
        uint128 unbonding;
        uint64 releaseAt;
    }

    bytes32 public constant SLASHER_ROLE = keccak256("SLASHER_ROLE");
    bytes32 public constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");
    uint256 public constant MAX_BPS = 10_000;
    uint256 public constant MAX_UNBONDING_DELAY = 90 days;

    IERC20 public immutable token;
    uint64 public unbondingDelay;
    uint16 public rewardShareBps;
    uint256 public totalStaked;
    mapping(Role => uint256) public minStake;
    mapping(address => mapping(Role => Position)) private _positions;

    event Staked(address indexed account, Role indexed role, uint256 amount);
    event UnbondRequested(address indexed account, Role indexed role, uint256 amount, uint64 releaseAt);
    event Withdrawn(address indexed account, Role indexed role, uint256 amount);
    event Slashed(
        address indexed account, Role indexed role, uint256 amount, address indexed beneficiary, uint256 reward, uint256 burned
    );
    event ParameterChanged(bytes32 indexed name, uint256 value);

    error ZeroAmount();
    error InsufficientStake(address account, Role role, uint256 available, uint256 required);
    error NothingToWithdraw(address account, Role role);
    error StillUnbonding(uint64 releaseAt, uint64 nowTs);
    error InvalidParameter(bytes32 name, uint256 value);

    constructor(
        IERC20 token_,
        address admin,
        uint64 unbondingDelay_,
        uint16 rewardShareBps_,
        uint256 minSolverStake,
        uint256 minVerifierStake
    ) {
        token = token_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setUnbondingDelay(unbondingDelay_);
        _setRewardShareBps(rewardShareBps_);
        minStake[Role.Solver] = minSolverStake;
        minStake[Role.Verifier] = minVerifierStake;
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

    /// @notice Start unbonding `amount` of active stake; restarts the delay for the whole unbonding amount.
    function requestUnbond(Role role, uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        Position storage p = _positions[msg.sender][role];
        if (p.active < amount) revert InsufficientStake(msg.sender, role, p.active, amount);
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

    /// @notice Slash up to `amount` of `account`'s stake for `role`; only the dispute outcome path.
    /// @return slashed what was actually taken (capped at active + unbonding stake).
    function slash(address account, Role role, uint256 amount, address beneficiary)
        external
        onlyRole(SLASHER_ROLE)
        nonReentrant
        returns (uint256 slashed)
    {
        Position storage p = _positions[account][role];
        uint256 fromActive = amount <= p.active ? amount : p.active;
        uint256 rest = amount - fromActive;
        uint256 fromUnbonding = rest <= p.unbonding ? rest : p.unbonding;
        p.active -= uint128(fromActive);
        p.unbonding -= uint128(fromUnbonding);
        slashed = fromActive + fromUnbonding;
        if (slashed == 0) return 0;
        totalStaked -= slashed;
        uint256 reward = (slashed * rewardShareBps) / MAX_BPS;
        uint256 burned = slashed - reward;
        if (reward > 0) token.safeTransfer(beneficiary, reward);
        if (burned > 0) ERC20Burnable(address(token)).burn(burned);
        emit Slashed(account, role, slashed, beneficiary, reward, burned);
    }

    /// @notice (active, unbonding, releaseAt) of `account` for `role`.
    function positionOf(address account, Role role) external view returns (uint256, uint256, uint64) {
        Position storage p = _positions[account][role];
        return (p.active, p.unbonding, p.releaseAt);
    }

    /// @notice Active (not unbonding) stake of `account` for `role`.
    function activeStake(address account, Role role) external view returns (uint256) {
        return _positions[account][role].active;
    }

    /// @notice Revert with InsufficientStake unless `account` has at least the minimum active stake for `role`.
    function requireStake(address account, Role role) external view {
        uint256 active = _positions[account][role].active;
        uint256 required = minStake[role];
        if (active < required || active == 0) revert InsufficientStake(account, role, active, required);
    }

    function setUnbondingDelay(uint64 delay) external onlyRole(GOVERNOR_ROLE) {
        _setUnbondingDelay(delay);
    }

    function setRewardShareBps(uint16 bps) external onlyRole(GOVERNOR_ROLE) {
        _setRewardShareBps(bps);
    }

    function setMinStake(Role role, uint256 amount) external onlyRole(GOVERNOR_ROLE) {
        minStake[role] = amount;
        emit ParameterChanged(role == Role.Solver ? bytes32("minSolverStake") : bytes32("minVerifierStake"), amount);
    }

    function _setUnbondingDelay(uint64 delay) private {
        if (delay > MAX_UNBONDING_DELAY) revert InvalidParameter("unbondingDelay", delay);
        unbondingDelay = delay;
        emit ParameterChanged("unbondingDelay", delay);
    }

    function _setRewardShareBps(uint16 bps) private {
        if (bps > MAX_BPS) revert InvalidParameter("rewardShareBps", bps);
        rewardShareBps = bps;
        emit ParameterChanged("rewardShareBps", bps);
    }
}
