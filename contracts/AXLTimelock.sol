// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title AXL timelock: OpenZeppelin TimelockController, the holder of every protocol role.
/// @notice Deployed with the deployer as temporary admin only so that the governor can be made
///         its proposer and canceller; the deployment then renounces that admin role, leaving
///         the timelock administered by itself alone (changes to it go through governance too).
///         Anyone may execute a queued operation once its delay has passed.
contract AXLTimelock is TimelockController {
    constructor(uint256 minDelay, address admin)
        TimelockController(minDelay, new address[](0), _anyone(), admin)
    {}

    function _anyone() private pure returns (address[] memory executors) {
        executors = new address[](1); // address(0): open execution
    }
}
