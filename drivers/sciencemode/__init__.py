"""What the two ScienceMode generations (RehaStim2: ``sciencemode2``, P24: ``sciencemode4``)
share: the byte stuffing and the streaming receiver of their frames, the wait for a
packet-numbered ack, the serial factory's parameters, and the frame reading of their
conformance facts."""
