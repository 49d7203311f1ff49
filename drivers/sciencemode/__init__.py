"""What the two ScienceMode generations (RehaStim2: ``sciencemode2``, P24: ``sciencemode4``)
share: the byte stuffing and the streaming receiver of their frames, the codecs' field checks,
the wait for a packet-numbered ack, the host driver's link and receive path, and, for their
conformance facts, the frame reading, the tap and the withheld stop ack."""
