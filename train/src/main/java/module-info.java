/** The trainer and the jtune command line. */
module dev.jtune.train {
    requires transitive dev.jtune.gemma;
    requires com.fasterxml.jackson.databind;
    requires jdk.management; // the host's free memory, for the planner (HostMemory)

    exports dev.jtune.train;
    exports dev.jtune.train.args;
    exports dev.jtune.train.data;
    exports dev.jtune.train.loop;
    exports dev.jtune.train.report;
    opens dev.jtune.train to com.fasterxml.jackson.databind;
    opens dev.jtune.train.args to com.fasterxml.jackson.databind;
    opens dev.jtune.train.loop to com.fasterxml.jackson.databind;
    opens dev.jtune.train.report to com.fasterxml.jackson.databind;
}
