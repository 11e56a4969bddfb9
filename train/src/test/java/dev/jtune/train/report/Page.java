package dev.jtune.train.report;

import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;
import org.w3c.dom.NodeList;
import org.xml.sax.InputSource;

import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.xpath.XPathConstants;
import javax.xml.xpath.XPathExpressionException;
import javax.xml.xpath.XPathFactory;
import java.io.StringReader;
import java.util.ArrayList;
import java.util.List;

/** A written report.html read back as a DOM (the page is well-formed XML), queried with XPath. */
record Page(String text, Document dom) {

    static Page parse(String text) {
        try {
            DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
            f.setFeature("http://apache.org/xml/features/nonvalidating/load-external-dtd", false);
            return new Page(text, f.newDocumentBuilder().parse(new InputSource(new StringReader(text))));
        } catch (Exception e) {
            throw new AssertionError("report.html is not well-formed: " + e.getMessage(), e);
        }
    }

    List<Element> all(String xpath) {
        return all(dom, xpath);
    }

    static List<Element> all(Node context, String xpath) {
        try {
            NodeList nodes = (NodeList) XPathFactory.newInstance().newXPath().evaluate(xpath, context, XPathConstants.NODESET);
            List<Element> out = new ArrayList<>();
            for (int i = 0; i < nodes.getLength(); i++) {
                out.add((Element) nodes.item(i));
            }
            return out;
        } catch (XPathExpressionException e) {
            throw new IllegalArgumentException(xpath, e);
        }
    }

    Element one(String xpath) {
        List<Element> found = all(xpath);
        if (found.size() != 1) {
            throw new AssertionError(found.size() + " elements match " + xpath + ", expected one");
        }
        return found.getFirst();
    }

    /** The chart drawings, in page order. */
    List<Element> charts() {
        return all("//svg[contains(concat(' ', @class, ' '), ' chart ')]");
    }

    /** The figure (caption, drawing, legend) of the chart whose caption starts with prefix. */
    Element figure(String captionPrefix) {
        return one("//figure[starts-with(figcaption, '" + captionPrefix + "')]");
    }

    /** Whether a comes before b in the document. */
    static boolean precedes(Node a, Node b) {
        return (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING) != 0;
    }
}
