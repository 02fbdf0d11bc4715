// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Identity registry: AXL peer id (Ed25519 key) <-> chain address, proven by the key.
/// @notice A binding carries the peer key's Ed25519 signature over `bindingMessage(account)`
///         = "axl.identity.v1:" || chainid (32 bytes) || account (20 bytes). The EVM has no
///         Ed25519 precompile, so this contract records claims and never lets one claim block
///         another: any account may claim any key (one key per account), and a key may be
///         claimed by several accounts. Which claim is real is decided by the signature, which
///         every reader checks from the IdentityBound log (coordination's Chain.account_of and
///         Chain.peer_of do): a squatter's claim has no valid signature and is ignored, and it
///         can neither block the key holder's own binding nor be returned for the key.
contract IdentityRegistry {
    mapping(address => bytes32) public peerKeyOf;

    event IdentityBound(address indexed account, bytes32 indexed peerKey, bytes signature);
    event IdentityUnbound(address indexed account, bytes32 indexed peerKey);

    error ZeroPeerKey();
    error BadSignatureLength(uint256 length);
    error AlreadyBound(address account, bytes32 peerKey);
    error NotBound(address account);

    /// @notice The exact bytes the peer key must sign to bind to `account` on this chain.
    function bindingMessage(address account) public view returns (bytes memory) {
        return abi.encodePacked("axl.identity.v1:", block.chainid, account);
    }

    /// @notice Claim the Ed25519 key `peerKey` for the caller with its 64-byte `signature`.
    function bind(bytes32 peerKey, bytes calldata signature) external {
        if (peerKey == bytes32(0)) revert ZeroPeerKey();
        if (signature.length != 64) revert BadSignatureLength(signature.length);
        bytes32 current = peerKeyOf[msg.sender];
        if (current != bytes32(0)) revert AlreadyBound(msg.sender, current);
        peerKeyOf[msg.sender] = peerKey;
        emit IdentityBound(msg.sender, peerKey, signature);
    }

    /// @notice Remove the caller's claim.
    function unbind() external {
        bytes32 current = peerKeyOf[msg.sender];
        if (current == bytes32(0)) revert NotBound(msg.sender);
        delete peerKeyOf[msg.sender];
        emit IdentityUnbound(msg.sender, current);
    }
}
