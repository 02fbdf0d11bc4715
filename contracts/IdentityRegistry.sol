// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Identity registry: AXL peer id (Ed25519 key) <-> chain address.
/// @notice A binding carries the peer key's Ed25519 signature over `bindingMessage(account)`
///         = "axl.identity.v1:" || chainid (32 bytes) || account (20 bytes). The EVM has no
///         Ed25519 precompile, so the signature is NOT verified here: clients verify it before
///         submitting, and anyone can re-verify it from the IdentityBound event. What the
///         contract does enforce: one key per account, one account per key, only the account
///         itself binds or unbinds.
contract IdentityRegistry {
    mapping(address => bytes32) public peerKeyOf;
    mapping(bytes32 => address) public accountOf;

    event IdentityBound(address indexed account, bytes32 indexed peerKey, bytes signature);
    event IdentityUnbound(address indexed account, bytes32 indexed peerKey);

    error ZeroPeerKey();
    error BadSignatureLength(uint256 length);
    error AlreadyBound(address account, bytes32 peerKey);
    error PeerKeyTaken(bytes32 peerKey, address account);
    error NotBound(address account);

    /// @notice The exact bytes the peer key must sign to bind to `account` on this chain.
    function bindingMessage(address account) public view returns (bytes memory) {
        return abi.encodePacked("axl.identity.v1:", block.chainid, account);
    }

    /// @notice Bind the caller to the Ed25519 key `peerKey` with its 64-byte `signature`.
    function bind(bytes32 peerKey, bytes calldata signature) external {
        if (peerKey == bytes32(0)) revert ZeroPeerKey();
        if (signature.length != 64) revert BadSignatureLength(signature.length);
        bytes32 current = peerKeyOf[msg.sender];
        if (current != bytes32(0)) revert AlreadyBound(msg.sender, current);
        address holder = accountOf[peerKey];
        if (holder != address(0)) revert PeerKeyTaken(peerKey, holder);
        peerKeyOf[msg.sender] = peerKey;
        accountOf[peerKey] = msg.sender;
        emit IdentityBound(msg.sender, peerKey, signature);
    }

    /// @notice Remove the caller's binding.
    function unbind() external {
        bytes32 current = peerKeyOf[msg.sender];
        if (current == bytes32(0)) revert NotBound(msg.sender);
        delete peerKeyOf[msg.sender];
        delete accountOf[current];
        emit IdentityUnbound(msg.sender, current);
    }
}
