// Package enginetest is the engine's behavioural test suite: load
// balancing, dependencies, ACK gating, metadata, failures, shutdown and
// configuration errors, written against the public API only. The engine's
// own tests run it on the in-process transport; the ZeroMQ transport's tests
// run it over ipc and tcp, so every transport is held to the same behaviour.
package enginetest

import (
	"testing"

	"github.com/zmqpipeline/zmqpipeline/engine"
)

// Suite says how to reach the transport under test.
type Suite struct {
	// NewEndpoints returns endpoints no other test uses.
	NewEndpoints func(t testing.TB) engine.Endpoints
}

// Run runs every test of the suite as a subtest of t. The caller's package
// checks for leaked goroutines in its TestMain.
func Run(t *testing.T, s Suite) {
	tests := []struct {
		name string
		fn   func(*testing.T, Suite)
	}{
		{"DependentStartsAfterLastAckOfDependency", testDependentStartsAfterLastAckOfDependency},
		{"DiamondWithIndependentBranch", testDiamondWithIndependentBranch},
		{"DeepChain", testDeepChain},
		{"IndependentBranchesRunInParallel", testIndependentBranchesRunInParallel},
		{"EmptyDependencyReleasesDependent", testEmptyDependencyReleasesDependent},
		{"HandlerErrorsAndPanicsFailOnlyTheirItem", testHandlerErrorsAndPanicsFailOnlyTheirItem},
		{"PrepareAndResultHandlerFailuresAreItemFailures", testPrepareAndResultHandlerFailuresAreItemFailures},
		{"PermanentErrorsAttemptLimitsAndDeadlines", testPermanentErrorsAttemptLimitsAndDeadlines},
		{"TaskErrorAbortsTheRun", testTaskErrorAbortsTheRun},
		{"WorkerForUnknownTypeIsAnError", testWorkerForUnknownTypeIsAnError},
		{"WorkerInitErrorEndsItsRun", testWorkerInitErrorEndsItsRun},
		{"BadConfiguration", testBadConfiguration},
		{"LoggingIsQuietUnlessDebug", testLoggingIsQuietUnlessDebug},
		{"MetadataReachesEveryoneBeforeWork", testMetadataReachesEveryoneBeforeWork},
		{"MetadataRejectedWhenNotAwaited", testMetadataRejectedWhenNotAwaited},
		{"SecondMetadataRejectedSecondCollectorStandsBy", testSecondMetadataRejectedSecondCollectorStandsBy},
		{"MetadataFetchErrorIsReturned", testMetadataFetchErrorIsReturned},
		{"SingleWorkerCollectsEveryItemOnce", testSingleWorkerCollectsEveryItemOnce},
		{"LoadIsBalancedBetweenTwoWorkers", testLoadIsBalancedBetweenTwoWorkers},
		{"ShortItemsGrowTheWindow", testShortItemsGrowTheWindow},
		{"LargeItemsBoundTheWindow", testLargeItemsBoundTheWindow},
		{"StatusFollowsTheRun", testStatusFollowsTheRun},
		{"TraceContextTravelsWithTheItem", testTraceContextTravelsWithTheItem},
		{"TraceContextTooLongIsAnError", testTraceContextTooLongIsAnError},
		{"ResultsDoNotWaitForALongItem", testResultsDoNotWaitForALongItem},
		{"LongItemsKeepTheWindow", testLongItemsKeepTheWindow},
		{"ConcurrentWorkerHooks", testConcurrentWorkerHooks},
		{"AckDataReachesTaskAndGatingHolds", testAckDataReachesTaskAndGatingHolds},
		{"NotReadyWithNothingInFlightAborts", testNotReadyWithNothingInFlightAborts},
		{"ComponentsStartInAnyOrder", testComponentsStartInAnyOrder},
		{"ReadinessSignals", testReadinessSignals},
		{"AckHandlerSeesEveryAck", testAckHandlerSeesEveryAck},
		{"CancelReturnsContextError", testCancelReturnsContextError},
		{"DistributorCancelAbortsRemotePeers", testDistributorCancelAbortsRemotePeers},
		{"RunTwice", testRunTwice},
		{"WorkerLeavingHandsBackItsItems", testWorkerLeavingHandsBackItsItems},
		{"LateWorkerDoesNotHoldUpRunAll", testLateWorkerDoesNotHoldUpRunAll},
		{"HostilePeerDoesNotStopTheRun", testHostilePeerDoesNotStopTheRun},
		{"ForgedResultsAreNeverHandled", testForgedResultsAreNeverHandled},
		{"HoardingWorkerIsTakenForGone", testHoardingWorkerIsTakenForGone},
		{"CreditIsBoundedInTotal", testCreditIsBoundedInTotal},
		{"CreditIsEarned", testCreditIsEarned},
		{"HandshakeFloodIsCapped", testHandshakeFloodIsCapped},
		{"DurableRunResumes", testDurableRunResumes},
		{"CollectorRestartedWithTheDistributor", testCollectorRestartedWithTheDistributor},
		{"NewCollectorSkipsCompleteItems", testNewCollectorSkipsCompleteItems},
		{"ResumerContinuesFromItsCursor", testResumerContinuesFromItsCursor},
		{"JournalWithEveryACKButNotItsEnd", testJournalWithEveryACKButNotItsEnd},
		{"JournalOfAnotherPipelineIsRefused", testJournalOfAnotherPipelineIsRefused},
		{"ResumingANonDeterministicTaskFails", testResumingANonDeterministicTaskFails},
		{"TooManyPeersAreRefused", testTooManyPeersAreRefused},
		{"QuorumHoldsWorkUntilEnoughWorkersJoined", testQuorumHoldsWorkUntilEnoughWorkersJoined},
		{"WorkerKilledMidRun", testWorkerKilledMidRun},
		{"SilentWorkerIsTakenForGone", testSilentWorkerIsTakenForGone},
		{"StalledWorkerComesBackAndJoinsAgain", testStalledWorkerComesBackAndJoinsAgain},
		{"DuplicatedMessagesAreHandledOnce", testDuplicatedMessagesAreHandledOnce},
		{"CollectorKilledAndReplaced", testCollectorKilledAndReplaced},
		{"DistributorLost", testDistributorLost},
		{"NoDeadlockByConfiguration", testNoDeadlockByConfiguration},
		{"DrainFinishesWhatTheWorkerHolds", testDrainFinishesWhatTheWorkerHolds},
		{"DrainGraceIsBounded", testDrainGraceIsBounded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, s) })
	}
}
