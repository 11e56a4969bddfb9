package dev.jtune.train.report;

/** One chart of report.html: a figure with its caption, an {@code <svg class="chart">} drawing and a legend. */
sealed interface Chart permits SvgChart, StackedChart {
    /** The caption's heading, with the unit. */
    String title();

    /** The figure as HTML (and well-formed XML). */
    String html();
}
